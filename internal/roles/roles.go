// Package roles creates the proxy's login roles and installs the context
// signing key (`pgtenant setup-roles`).
//
// Each login role is granted exactly one group role, WITH INHERIT FALSE,
// SET TRUE: it can SET ROLE to its group but has no privileges of its own,
// so a client that runs RESET ROLE can read nothing (DESIGN §1.1). Any other
// membership a login role has is revoked. This lives outside the migrations
// because it holds secrets and is cluster-wide.
//
// A tenant can always act as its login role (set_config('role', 'none',
// true)), so Apply also makes the login role harmless (DESIGN §1.3): role
// settings only a superuser can change keep query text and proofs out of
// pg_stat_activity and the server log, and pg_catalog functions that act on
// other backends or on large objects are revoked from PUBLIC.
package roles

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

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
	for _, l := range []Login{s.Tenant, s.Operations} {
		if err := pinSettings(ctx, tx, l.Name); err != nil {
			return err
		}
	}
	if err := revokeFunctions(ctx, tx, s); err != nil {
		return err
	}
	if err := installKey(ctx, tx, s.ContextKey); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func loginRole(ctx context.Context, tx pgx.Tx, l Login, group string) error {
	verifier, err := SCRAMVerifier(l.Password)
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

// Setting is one role-level setting (ALTER ROLE ... SET Name = Value).
type Setting struct {
	Name, Value string
}

// String is the setting as pg_db_role_setting.setconfig stores it.
func (s Setting) String() string { return s.Name + "=" + s.Value }

// PinnedSettings are the role-level settings of every login role, and its
// only ones: setup-roles removes any other (a role may ALTER ROLE
// CURRENT_USER SET any parameter it may SET, so a tenant can add some; the
// proxy compares a login role's pg_db_role_setting against this list).
//
// Each is PGC_SUSET: a non-superuser can neither SET it in a session nor
// SET or RESET it on its own role (42501), so a tenant acting as the login
// role cannot undo it. The log_* ones keep a tenant's statements and frames
// (with their proofs) out of the server log; track_activities = off keeps
// them out of pg_stat_activity, where every backend of the same login role
// (that is, every other tenant) could read them.
var PinnedSettings = []Setting{
	{"track_activities", "off"},
	{"log_statement", "none"},
	{"log_min_error_statement", "panic"}, // no STATEMENT: line after an error
	{"log_min_duration_statement", "-1"},
	{"log_min_duration_sample", "-1"},
	{"log_transaction_sample_rate", "0"},
	{"log_duration", "off"},
	{"log_parameter_max_length", "0"},
	// No DETAIL, HINT or CONTEXT lines: CONTEXT quotes the statement a
	// PL/pgSQL error happened in, that is a tenant's SQL text.
	{"log_error_verbosity", "terse"},
	// A placeholder while the module is not loaded: PostgreSQL stores it
	// for a superuser (a non-superuser gets 42501), and checks it as
	// PGC_SUSET once pg_stat_statements is preloaded.
	{"pg_stat_statements.track", "none"},
}

// pinSettings makes PinnedSettings the login role's only role settings, in
// every database.
func pinSettings(ctx context.Context, tx pgx.Tx, login string) error {
	name := pgx.Identifier{login}.Sanitize()
	rows, err := tx.Query(ctx, `SELECT d.datname FROM pg_db_role_setting s
        JOIN pg_database d ON d.oid = s.setdatabase WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1)`, login)
	if err != nil {
		return err
	}
	dbs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	stmts := []string{"ALTER ROLE " + name + " RESET ALL"}
	for _, db := range dbs {
		stmts = append(stmts, fmt.Sprintf("ALTER ROLE %s IN DATABASE %s RESET ALL", name, pgx.Identifier{db}.Sanitize()))
	}
	for _, s := range PinnedSettings {
		stmts = append(stmts, fmt.Sprintf("ALTER ROLE %s SET %s = %s", name, s.Name, quoteLiteral(s.Value)))
	}
	for _, stmt := range stmts {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("role settings of %s: %s: %w", login, stmt, err)
		}
	}
	return nil
}

// quoteLiteral quotes a constant of this package as an SQL literal (utility
// statements take no parameters).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// revokedFunctions are pg_catalog functions PUBLIC may execute by default
// that let a login role act beyond its own transaction: every backend of a
// login role belongs to the same role, so each one is another tenant's.
// Match is a condition on pg_proc p, so every signature (and any a later
// release adds) is covered. Keep is the predefined role that keeps EXECUTE;
// keepOwner keeps it for the database owner too (unless a superuser, who
// needs no grant).
//
// These are objects of the bootstrap superuser, which only a superuser may
// GRANT on: that is why they live in setup-roles and not in the migrations
// (which may run as the database owner). ACLs on pg_catalog are per
// database, so this covers the current database only.
var revokedFunctions = []struct {
	what, match, keep string
	keepOwner         bool
}{
	// Members of pg_signal_backend may signal any non-superuser backend;
	// everyone else only their own role's, that is other tenants'.
	{what: "signalling backends", match: `p.proname IN ('pg_cancel_backend', 'pg_terminate_backend')`, keep: "pg_signal_backend"},
	// Large objects live outside RLS and belong to the login role that
	// created them, so every tenant could read and write them.
	{what: "large objects", match: `p.proname ~ '^lo_' OR p.proname IN ('loread', 'lowrite')`},
	// A session-level lock outlives the transaction and stays on the
	// pooled connection (the next tenant's). The _xact_ ones stay usable.
	// pgtenant migrate serialises runs with pg_advisory_lock and may run
	// as the (non-superuser) owner.
	{what: "session-level advisory locks", match: `p.proname ~ '^pg_(try_)?advisory_' AND p.proname !~ '_xact_'`, keepOwner: true},
	// pg_stat_activity (and the per-backend statistics) show every backend
	// of the same login role, other tenants' among them: with
	// track_activities off no query text, but still application_name
	// (which pgtenant sets per client), wait events and I/O. Monitoring
	// roles (pg_read_all_stats, in pg_monitor) keep them.
	{what: "other backends' activity", match: `p.proname = 'pg_stat_get_activity' OR p.proname ~ '^pg_stat_get_backend_'`, keep: "pg_read_all_stats"},
}

// revokeFunctions revokes revokedFunctions from PUBLIC and from any role a
// login role can become, then checks that none of those roles can still
// execute one (through a membership granted elsewhere, say).
func revokeFunctions(ctx context.Context, tx pgx.Tx, s Setup) error {
	holders := pgx.Identifier{s.Tenant.Name}.Sanitize() + ", " + pgx.Identifier{s.Operations.Name}.Sanitize() +
		", erun_tenant, erun_operations, PUBLIC"
	var owner string
	if err := tx.QueryRow(ctx, `SELECT CASE WHEN r.rolsuper THEN '' ELSE r.rolname END
        FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = current_database()`).Scan(&owner); err != nil {
		return err
	}
	for _, g := range revokedFunctions {
		fns, err := catalogFunctions(ctx, tx, g.match)
		if err != nil {
			return fmt.Errorf("find functions for %s: %w", g.what, err)
		}
		keep := []string{}
		if g.keep != "" {
			keep = append(keep, g.keep)
		}
		if g.keepOwner && owner != "" {
			keep = append(keep, pgx.Identifier{owner}.Sanitize())
		}
		for _, fn := range fns {
			stmts := []string{fmt.Sprintf("REVOKE EXECUTE ON FUNCTION %s FROM %s", fn, holders)}
			if len(keep) > 0 {
				stmts = append(stmts, fmt.Sprintf("GRANT EXECUTE ON FUNCTION %s TO %s", fn, strings.Join(keep, ", ")))
			}
			for _, stmt := range stmts {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("%s: %s: %w", g.what, stmt, err)
				}
			}
		}
	}
	return checkRevoked(ctx, tx, s)
}

// catalogFunctions lists the pg_catalog functions matching cond as
// qualified signatures (e.g. pg_catalog.lo_get(oid, bigint, integer)).
func catalogFunctions(ctx context.Context, tx pgx.Tx, cond string) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT format('pg_catalog.%I(%s)', p.proname, pg_get_function_identity_arguments(p.oid)) FROM pg_proc p
        WHERE p.pronamespace = 'pg_catalog'::regnamespace AND (`+cond+`) ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// checkRevoked fails if a login role, or a role it can SET ROLE to (directly
// or through a chain), can still execute a revoked function.
func checkRevoked(ctx context.Context, tx pgx.Tx, s Setup) error {
	conds := make([]string, len(revokedFunctions))
	for i, g := range revokedFunctions {
		conds[i] = "(" + g.match + ")"
	}
	rows, err := tx.Query(ctx, `WITH RECURSIVE reach(oid) AS (
            SELECT oid FROM pg_roles WHERE rolname = ANY($1)
            UNION SELECT m.roleid FROM pg_auth_members m JOIN reach r ON m.member = r.oid
            WHERE m.set_option OR m.inherit_option)
        SELECT r.oid::regrole || ' may execute ' || p.oid::regprocedure FROM reach r, pg_proc p
        WHERE p.pronamespace = 'pg_catalog'::regnamespace AND (`+strings.Join(conds, " OR ")+`)
        AND has_function_privilege(r.oid, p.oid, 'EXECUTE') ORDER BY 1`,
		[]string{s.Tenant.Name, s.Operations.Name})
	if err != nil {
		return err
	}
	bad, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("revoked functions are still reachable from a login role (remove the grant or membership): %s", strings.Join(bad, "; "))
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
