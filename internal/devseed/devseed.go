// Package devseed fills a freshly migrated database with two demo tenants
// and a few rows in every tenant-owned example table. It runs as a superuser
// or the operations role and sets tenant_id explicitly. Re-running it adds
// nothing: rows are keyed by their natural keys.
package devseed

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Tenant is a seeded tenant.
type Tenant struct {
	ID   uuid.UUID `json:"tenant_id"`
	Slug string    `json:"slug"`
	Name string    `json:"name"`
}

type demo struct {
	slug, name string
	users      []string
	projects   map[string][]string
}

var demos = []demo{
	{"acme", "Acme Corporation", []string{"wile@acme.test", "road.runner@acme.test"},
		map[string][]string{"Rocket skates": {"Order parts", "Test on the mesa"}, "Giant magnet": {"Find a cliff"}}},
	{"globex", "Globex Corporation", []string{"hank@globex.test", "homer@globex.test"},
		map[string][]string{"Doomsday device": {"Hire henchmen", "Buy a volcano"}, "Cafeteria": {"Order donuts"}}},
}

// Seed inserts the demo tenants and their rows, returning the tenants.
func Seed(ctx context.Context, conn *pgx.Conn) ([]Tenant, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	var out []Tenant
	for _, d := range demos {
		t := Tenant{Slug: d.slug, Name: d.name}
		if _, err := insertOrSelect(ctx, tx, &t.ID,
			`INSERT INTO tenants (slug, name) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING RETURNING tenant_id`,
			`SELECT tenant_id FROM tenants WHERE slug = $1`, d.slug, d.name); err != nil {
			return nil, fmt.Errorf("seed tenant %s: %w", d.slug, err)
		}
		var firstUser uuid.UUID
		for i, email := range d.users {
			var id uuid.UUID
			if _, err := insertOrSelect(ctx, tx, &id,
				`INSERT INTO users (tenant_id, email, display_name) VALUES ($1, $2, $2) ON CONFLICT (tenant_id, email) DO NOTHING RETURNING user_id`,
				`SELECT user_id FROM users WHERE tenant_id = $1 AND email = $2`, t.ID, email); err != nil {
				return nil, fmt.Errorf("seed user %s: %w", email, err)
			}
			if i == 0 {
				firstUser = id
			}
			if _, err := tx.Exec(ctx, `INSERT INTO user_external_ids (tenant_id, user_id, issuer, subject)
                VALUES ($1, $2, 'https://id.' || $3 || '.test', $4) ON CONFLICT DO NOTHING`, t.ID, id, d.slug, email); err != nil {
				return nil, fmt.Errorf("seed external id of %s: %w", email, err)
			}
		}
		for project, tasks := range d.projects {
			var pid uuid.UUID
			fresh, err := insertOrSelect(ctx, tx, &pid,
				`INSERT INTO projects (tenant_id, name) VALUES ($1, $2) ON CONFLICT (tenant_id, name) DO NOTHING RETURNING project_id`,
				`SELECT project_id FROM projects WHERE tenant_id = $1 AND name = $2`, t.ID, project)
			if err != nil {
				return nil, fmt.Errorf("seed project %s: %w", project, err)
			}
			if !fresh {
				continue // tasks were seeded with the project
			}
			for _, title := range tasks {
				if _, err := tx.Exec(ctx, `INSERT INTO tasks (tenant_id, project_id, title, assignee_id) VALUES ($1, $2, $3, $4)`,
					t.ID, pid, title, firstUser); err != nil {
					return nil, fmt.Errorf("seed task %s: %w", title, err)
				}
			}
		}
		out = append(out, t)
	}
	return out, tx.Commit(ctx)
}

// insertOrSelect runs insert (ON CONFLICT DO NOTHING RETURNING id); when the
// row already existed it reads the id with sel, which takes the insert's
// arguments minus the trailing ones it does not use. It reports whether the
// row is new. Existing rows are not touched, so their updated_at stays.
func insertOrSelect(ctx context.Context, tx pgx.Tx, id *uuid.UUID, insert, sel string, args ...any) (bool, error) {
	err := tx.QueryRow(ctx, insert, args...).Scan(id)
	if err == nil {
		return true, nil
	}
	if err != pgx.ErrNoRows {
		return false, err
	}
	n := strings.Count(sel, "$")
	return false, tx.QueryRow(ctx, sel, args[:n]...).Scan(id)
}
