// Package roles creates the proxy's login roles and installs the context
// signing key (`pgtenant setup-roles`).
//
// Each login role is granted exactly one group role, WITH INHERIT FALSE,
// SET TRUE: it can SET ROLE to its group but has no privileges of its own,
// so a client that runs RESET ROLE can read nothing (DESIGN §1.1). Any other
// membership a login role has is revoked. This lives outside the migrations
// because it holds secrets and is cluster-wide.
package roles

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/tenantctx"
)

// Default login role names.
const (
	DefaultTenantLogin     = "erun_proxy_tenant"
	DefaultOperationsLogin = "erun_proxy_operations"
)

// Login is one login role of the proxy.
type Login struct {
	Name     string
	Password string
}

// Setup is what setup-roles installs.
type Setup struct {
	Tenant     Login // granted erun_tenant
	Operations Login // granted erun_operations; also resolves credentials
	ContextKey tenantctx.Key
}

var identPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Apply installs s in one transaction. It is idempotent: passwords are reset
// to the given ones, and a context key already present with the same secret
// is left alone.
func Apply(ctx context.Context, conn *pgx.Conn, s Setup) error {
	for _, l := range []Login{s.Tenant, s.Operations} {
		if !identPattern.MatchString(l.Name) {
			return fmt.Errorf("login role name %q: use lower-case letters, digits and _", l.Name)
		}
		if l.Password == "" {
			return fmt.Errorf("login role %s: no password given", l.Name)
		}
	}
	if s.Tenant.Name == s.Operations.Name {
		return errors.New("the tenant and operations login roles must differ")
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)

	var migrated bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('erun_private.context_keys') IS NOT NULL
        AND EXISTS (SELECT FROM pg_roles WHERE rolname = 'erun_tenant')
        AND EXISTS (SELECT FROM pg_roles WHERE rolname = 'erun_operations')`).Scan(&migrated); err != nil {
		return err
	}
	if !migrated {
		return errors.New("the database has no pgtenant schema: run `pgtenant migrate` first")
	}
	if err := loginRole(ctx, tx, s.Tenant, "erun_tenant"); err != nil {
		return err
	}
	if err := loginRole(ctx, tx, s.Operations, "erun_operations"); err != nil {
		return err
	}
	for _, fn := range []string{"erun_resolve_issuer(text)", "erun_lookup_api_key(text)"} {
		if _, err := tx.Exec(ctx, fmt.Sprintf("GRANT EXECUTE ON FUNCTION %s TO %s", fn, pgx.Identifier{s.Operations.Name}.Sanitize())); err != nil {
			return fmt.Errorf("grant %s: %w", fn, err)
		}
	}
	if err := installKey(ctx, tx, s.ContextKey); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func loginRole(ctx context.Context, tx pgx.Tx, l Login, group string) error {
	verifier, err := scramVerifier(l.Password)
	if err != nil {
		return err
	}
	name := pgx.Identifier{l.Name}.Sanitize()
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`, l.Name).Scan(&exists); err != nil {
		return err
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	// Utility statements take no parameters; the verifier is base64 and '$'
	// only, so quoting it as a literal is safe.
	stmt := fmt.Sprintf("%s ROLE %s WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD '%s'",
		verb, name, verifier)
	if _, err := tx.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s role %s: %w", verb, l.Name, err)
	}
	rows, err := tx.Query(ctx, `SELECT g.rolname FROM pg_auth_members m
        JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
        WHERE u.rolname = $1 AND g.rolname <> $2`, l.Name, group)
	if err != nil {
		return err
	}
	others, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, g := range others {
		if _, err := tx.Exec(ctx, fmt.Sprintf("REVOKE %s FROM %s CASCADE", pgx.Identifier{g}.Sanitize(), name)); err != nil {
			return fmt.Errorf("revoke %s from %s: %w", g, l.Name, err)
		}
	}
	// Re-granting updates the options of an existing membership.
	if _, err := tx.Exec(ctx, fmt.Sprintf("GRANT %s TO %s WITH INHERIT FALSE, SET TRUE, ADMIN FALSE",
		pgx.Identifier{group}.Sanitize(), name)); err != nil {
		return fmt.Errorf("grant %s to %s: %w", group, l.Name, err)
	}
	return nil
}

func installKey(ctx context.Context, tx pgx.Tx, k tenantctx.Key) error {
	if len(k.Secret) < tenantctx.MinSecretBytes {
		return errors.New("no context key given")
	}
	tag, err := tx.Exec(ctx, `INSERT INTO erun_private.context_keys (key_id, secret) VALUES ($1, $2)
        ON CONFLICT (key_id) DO NOTHING`, k.ID, k.Secret)
	if err != nil {
		return fmt.Errorf("install context key: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var same bool
	if err := tx.QueryRow(ctx, `SELECT secret = $2 AND revoked_at IS NULL FROM erun_private.context_keys WHERE key_id = $1`,
		k.ID, k.Secret).Scan(&same); err != nil {
		return err
	}
	if !same {
		return fmt.Errorf("context key %q is already installed with another secret or was revoked: rotate by installing a key with a new id", k.ID)
	}
	return nil
}
