package proxy_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/devseed"
	"github.com/pgtenant/pgtenant/internal/proxytest"
)

// TestClientsSeeOnlyTheirTenant: pgx (default and simple protocol) with a
// JWT and with an API key reads only its tenant's rows, inserts land in
// its tenant through the column default, and writes aimed at the other
// tenant's rows affect nothing.
func TestClientsSeeOnlyTheirTenant(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{})
	ctx := context.Background()
	apiKeyA, _ := e.APIKey(e.A.ID, "tenant", nil)
	creds := map[string]string{"jwt": e.Token(e.A.ID, "tenant", nil), "api key": apiKeyA}
	for credName, cred := range creds {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
			t.Run(credName+"/"+mode.String(), func(t *testing.T) {
				c := e.Connect(cred, mode)
				var own, foreign int
				if err := c.QueryRow(ctx, `SELECT count(*) FILTER (WHERE tenant_id = $1), count(*) FILTER (WHERE tenant_id <> $1) FROM tasks`, e.A.ID).Scan(&own, &foreign); err != nil {
					t.Fatal(err)
				}
				if own == 0 || foreign != 0 {
					t.Fatalf("sees %d own and %d foreign tasks", own, foreign)
				}
				var tenant uuid.UUID
				name := fmt.Sprintf("new %s %s", credName, mode)
				if err := c.QueryRow(ctx, `INSERT INTO projects (name) VALUES ($1) RETURNING tenant_id`, name).Scan(&tenant); err != nil {
					t.Fatal(err)
				}
				if tenant != e.A.ID {
					t.Fatalf("insert got tenant %s, want %s", tenant, e.A.ID)
				}
				for _, sql := range []string{
					`UPDATE projects SET name = name || '!' WHERE tenant_id = $1`,
					`DELETE FROM tasks WHERE tenant_id = $1`,
					`UPDATE users SET email = 'x' || email WHERE tenant_id = $1`,
				} {
					tag, err := c.Exec(ctx, sql, e.B.ID)
					if err != nil {
						t.Fatalf("%s: %v", sql, err)
					}
					if tag.RowsAffected() != 0 {
						t.Fatalf("%s affected %d rows of tenant B", sql, tag.RowsAffected())
					}
				}
			})
		}
	}
	assertUntouched(t, e, e.B)
}

// assertUntouched checks, as the superuser, that tenant tn's seeded rows
// are all still there unchanged.
func assertUntouched(t *testing.T, e *proxytest.Env, tn devseed.Tenant) {
	t.Helper()
	var projects, tasks int
	var names string
	if err := e.Admin.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM projects WHERE tenant_id = $1),
        (SELECT count(*) FROM tasks WHERE tenant_id = $1),
        (SELECT string_agg(name, ',' ORDER BY name) FROM projects WHERE tenant_id = $1)`, tn.ID).Scan(&projects, &tasks, &names); err != nil {
		t.Fatal(err)
	}
	if projects != 2 || tasks != 3 || strings.Contains(names, "!") {
		t.Fatalf("tenant %s was changed: %d projects (%s), %d tasks", tn.Slug, projects, names, tasks)
	}
}

func TestPsqlWithJWTAndAPIKey(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{})
	apiKeyB, _ := e.APIKey(e.B.ID, "tenant", nil)
	cases := []struct {
		name, password string
		want           string
	}{
		{"jwt as A", e.Token(e.A.ID, "tenant", nil), "Giant magnet|" + e.A.ID.String() + "\nRocket skates|" + e.A.ID.String()},
		{"api key as B", apiKeyB, "Cafeteria|" + e.B.ID.String() + "\nDoomsday device|" + e.B.ID.String()},
	}
	host, port := e.HostPort()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(proxytest.PSQL(t), "-h", host, "-p", port, "-U", "app", "-d", e.DBName, "-XAt",
				"-c", "SELECT name, tenant_id FROM projects ORDER BY name",
				"-c", "INSERT INTO projects (name) VALUES ('from psql') RETURNING tenant_id = (SELECT tenant_id FROM tasks LIMIT 1)",
				"-c", "DELETE FROM projects WHERE name = 'from psql'")
			cmd.Env = append(cmd.Environ(), "PGPASSWORD="+c.password, "PGSSLMODE=disable")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("psql: %v\n%s", err, out)
			}
			want := c.want + "\nt\nINSERT 0 1\nDELETE 1"
			if got := strings.TrimSpace(string(out)); got != want {
				t.Fatalf("psql printed\n%s\nwant\n%s", got, want)
			}
		})
	}
	assertUntouched(t, e, e.A)
	assertUntouched(t, e, e.B)
}
