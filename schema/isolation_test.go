package schema_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtenant/pgtenant/internal/devseed"
	"github.com/pgtenant/pgtenant/internal/pgtest"
	"github.com/pgtenant/pgtenant/internal/roles"
	"github.com/pgtenant/pgtenant/internal/tenantctx"
)

// fixture is a migrated, seeded database with the proxy's login roles.
type fixture struct {
	admin      *pgx.Conn
	tenant     *pgx.Conn // logged in as erun_proxy_tenant
	operations *pgx.Conn // logged in as erun_proxy_operations
	key        tenantctx.Key
	a, b       devseed.Tenant
	// pid and serial of f.tenant's backend: proofs are bound to both.
	pid    uint32
	serial int64
}

const (
	tenantPassword     = "tenant-login-secret"
	operationsPassword = "operations-login-secret"
)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	srv := pgtest.Shared(t)
	dsn := migrated(t)
	admin := pgtest.Connect(t, dsn)
	key, err := tenantctx.GenerateKey("test-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := roles.Apply(ctx, admin, roles.Setup{
		Tenant:     roles.Login{Name: roles.DefaultTenantLogin, Password: tenantPassword},
		Operations: roles.Login{Name: roles.DefaultOperationsLogin, Password: operationsPassword},
		ContextKey: key,
	}); err != nil {
		t.Fatalf("setup roles: %v", err)
	}
	tenants, err := devseed.Seed(ctx, admin)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	f := &fixture{admin: admin, key: key, a: tenants[0], b: tenants[1]}
	for _, tn := range tenants {
		if _, err := admin.Exec(ctx, `INSERT INTO api_keys (tenant_id, key_id, secret_hash, name, role)
            VALUES ($1, $2, sha256($3::bytea), 'ci', 'member')`, tn.ID, "key"+tn.Slug+"0001", "secret-"+tn.Slug); err != nil {
			t.Fatal(err)
		}
	}
	db := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	f.tenant = pgtest.Connect(t, srv.DSN(roles.DefaultTenantLogin, tenantPassword, db))
	f.operations = pgtest.Connect(t, srv.DSN(roles.DefaultOperationsLogin, operationsPassword, db))
	// What pgtenant does right after connecting.
	f.pid = f.tenant.PgConn().PID()
	if err := f.tenant.QueryRow(ctx, "SELECT erun_open_context_serial()").Scan(&f.serial); err != nil {
		t.Fatalf("open the context serial: %v", err)
	}
	return f
}

// proof is pgtenant's proof for tenant on f.tenant as it stands.
func (f *fixture) proof(tenant uuid.UUID) string { return f.key.Proof(tenant, f.pid, f.serial) }

// asTenant runs fn in a transaction framed exactly as pgtenant frames one:
// BEGIN; SET LOCAL ROLE erun_tenant; SET LOCAL erun.tenant_id; SET LOCAL
// erun.tenant_proof. The transaction is rolled back unless commit is true.
func (f *fixture) asTenant(t *testing.T, tenant uuid.UUID, proof string, commit bool, fn func(tx pgx.Tx) error) error {
	t.Helper()
	ctx := context.Background()
	tx, err := f.tenant.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	frame := fmt.Sprintf("SET LOCAL ROLE erun_tenant; SET LOCAL erun.tenant_id = '%s'; SET LOCAL erun.tenant_proof = '%s'", tenant, proof)
	if _, err := tx.Conn().PgConn().Exec(ctx, frame).ReadAll(); err != nil {
		t.Fatalf("frame: %v", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if commit {
		return tx.Commit(ctx)
	}
	return nil
}

func (f *fixture) as(t *testing.T, tn devseed.Tenant, fn func(tx pgx.Tx) error) error {
	return f.asTenant(t, tn.ID, f.proof(tn.ID), false, fn)
}

func sqlstate(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func count(t *testing.T, q pgx.Tx, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := q.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func TestTenantSeesOnlyItsOwnRowsInEveryTable(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, table := range tenantOwned(t, f.admin) {
		for _, tn := range []devseed.Tenant{f.a, f.b} {
			var own, total int
			if err := f.admin.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FILTER (WHERE tenant_id = $1), count(*) FROM %s`, table), tn.ID).Scan(&own, &total); err != nil {
				t.Fatal(err)
			}
			if own == 0 || own == total {
				t.Fatalf("%s: seed gives tenant %s %d of %d rows; the test needs rows of both tenants", table, tn.Slug, own, total)
			}
			err := f.as(t, tn, func(tx pgx.Tx) error {
				if got := count(t, tx, "SELECT count(*) FROM "+table); got != own {
					t.Errorf("%s as %s: sees %d rows, owns %d", table, tn.Slug, got, own)
				}
				if got := count(t, tx, "SELECT count(*) FROM "+table+" WHERE tenant_id <> $1", tn.ID); got != 0 {
					t.Errorf("%s as %s: sees %d rows of other tenants", table, tn.Slug, got)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestTenantCannotWriteAnotherTenantsRows(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var bProject, bUser, bTask uuid.UUID
	if err := f.admin.QueryRow(ctx, `SELECT p.project_id, u.user_id, k.task_id FROM projects p, users u, tasks k
        WHERE p.tenant_id = $1 AND u.tenant_id = $1 AND k.tenant_id = $1 LIMIT 1`, f.b.ID).Scan(&bProject, &bUser, &bTask); err != nil {
		t.Fatal(err)
	}
	before := rowDigest(t, f.admin, f.b.ID)

	writes := []struct {
		name, sql string
		args      func() []any
		wantState string // SQLSTATE, or "" for "succeeds but affects 0 rows"
	}{
		{"insert project for B", `INSERT INTO projects (tenant_id, name) VALUES ($1, 'stolen')`, func() []any { return []any{f.b.ID} }, "42501"},
		{"insert user for B", `INSERT INTO users (tenant_id, email) VALUES ($1, 'x@evil.test')`, func() []any { return []any{f.b.ID} }, "42501"},
		{"insert task into B's project", `INSERT INTO tasks (project_id, title) VALUES ($1, 'x')`, func() []any { return []any{bProject} }, "23503"},
		{"insert task for B", `INSERT INTO tasks (tenant_id, project_id, title) VALUES ($1, $2, 'x')`, func() []any { return []any{f.b.ID, bProject} }, "42501"},
		{"update B's projects", `UPDATE projects SET name = name || ' (pwned)' WHERE tenant_id = $1`, func() []any { return []any{f.b.ID} }, ""},
		{"update B's task by id", `UPDATE tasks SET done = true WHERE task_id = $1`, func() []any { return []any{bTask} }, ""},
		{"delete B's users", `DELETE FROM users WHERE user_id = $1`, func() []any { return []any{bUser} }, ""},
		{"delete all tasks", `DELETE FROM tasks WHERE tenant_id <> $1`, func() []any { return []any{f.a.ID} }, ""},
		{"move own project to B", `UPDATE projects SET tenant_id = $1`, func() []any { return []any{f.b.ID} }, "42501"},
		{"insert api key", `INSERT INTO api_keys (key_id, secret_hash, role) VALUES ('evilkey1', sha256('x'), 'admin')`, func() []any { return nil }, "42501"},
		{"change own api key role", `UPDATE api_keys SET role = 'admin'`, func() []any { return nil }, "42501"},
		{"truncate tasks", `TRUNCATE tasks`, func() []any { return nil }, "42501"},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			err := f.as(t, f.a, func(tx pgx.Tx) error {
				tag, err := tx.Exec(ctx, w.sql, w.args()...)
				if err != nil {
					return err
				}
				if tag.RowsAffected() != 0 && w.wantState == "" {
					t.Errorf("affected %d rows of another tenant", tag.RowsAffected())
				}
				return nil
			})
			if got := sqlstate(err); got != w.wantState {
				t.Fatalf("err = %v (SQLSTATE %q), want SQLSTATE %q", err, got, w.wantState)
			}
		})
	}
	// Commit a harmless transaction to be sure the checks above were made
	// in transactions that could have committed, then compare B's rows.
	if err := f.asTenant(t, f.a.ID, f.proof(f.a.ID), true, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE projects SET name = name WHERE tenant_id = $1`, f.b.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if after := rowDigest(t, f.admin, f.b.ID); after != before {
		t.Fatalf("tenant B's rows changed")
	}
}

// rowDigest summarises every row of tenant in every tenant-owned table.
func rowDigest(t *testing.T, admin *pgx.Conn, tenant uuid.UUID) string {
	t.Helper()
	var parts []string
	for _, table := range tenantOwned(t, admin) {
		var d string
		if err := admin.QueryRow(context.Background(), fmt.Sprintf(
			`SELECT coalesce(md5(string_agg(r::text, ',' ORDER BY r::text)), '') FROM %s r WHERE tenant_id = $1`, table), tenant).Scan(&d); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, table+"="+d)
	}
	return strings.Join(parts, ";")
}

func TestForgedTenantContextIsRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	otherKey, err := tenantctx.GenerateKey("test-1")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		tenant uuid.UUID
		proof  string
		then   string // a statement run before the read
	}{
		{"A's proof on B's id", f.b.ID, f.proof(f.a.ID), ""},
		{"missing proof", f.b.ID, "", ""},
		{"proof from another key with the same id", f.b.ID, otherKey.Proof(f.b.ID, f.pid, f.serial), ""},
		{"unknown key id", f.b.ID, fmt.Sprintf("nope:%d:", f.serial) + strings.Repeat("0", 64), ""},
		{"B's proof for another backend", f.b.ID, f.key.Proof(f.b.ID, f.pid+1, f.serial), ""},
		{"B's proof for the previous serial", f.b.ID, f.key.Proof(f.b.ID, f.pid, f.serial-1), ""},
		{"B's proof for the next serial", f.b.ID, f.key.Proof(f.b.ID, f.pid, f.serial+1), ""},
		{"old proof form without a serial", f.b.ID, "test-1:" + strings.Repeat("0", 64), ""},
		{"malformed proof", f.b.ID, "garbage", ""},
		{"upper-case tenant id", uuid.Nil, f.proof(f.a.ID), "SELECT set_config('erun.tenant_id', upper('" + f.a.ID.String() + "'), true)"},
		{"set_config to B after a valid frame", f.a.ID, f.proof(f.a.ID), "SELECT set_config('erun.tenant_id', '" + f.b.ID.String() + "', true)"},
		{"session set_config to B", f.a.ID, f.proof(f.a.ID), "SELECT set_config('erun.tenant_id', '" + f.b.ID.String() + "', false)"},
		{"tenant id cleared", f.a.ID, f.proof(f.a.ID), "SET LOCAL erun.tenant_id = ''"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := f.asTenant(t, c.tenant, c.proof, false, func(tx pgx.Tx) error {
				if c.then != "" {
					if _, err := tx.Exec(ctx, c.then); err != nil {
						t.Fatalf("%s: %v", c.then, err)
					}
				}
				var n int
				return tx.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n)
			})
			if sqlstate(err) != "42501" {
				t.Fatalf("read with a forged context: err = %v, want SQLSTATE 42501", err)
			}
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && !strings.Contains(pgErr.Message, "tenant") {
				t.Fatalf("message %q does not say what is wrong with the tenant context", pgErr.Message)
			}
		})
	}
}

func TestRevokedContextKeyIsRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.admin.Exec(ctx, `UPDATE erun_private.context_keys SET revoked_at = now() WHERE key_id = $1`, f.key.ID); err != nil {
		t.Fatal(err)
	}
	err := f.as(t, f.a, func(tx pgx.Tx) error {
		var n int
		return tx.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n)
	})
	if sqlstate(err) != "42501" || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("err = %v, want 42501 naming the revoked key", err)
	}
}

func TestLoginRolesCannotEscalate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cases := []struct{ name, sql string }{
		{"SET ROLE erun_operations", "SET ROLE erun_operations"},
		{"SET LOCAL ROLE erun_operations", "SET LOCAL ROLE erun_operations"},
		{"SET SESSION AUTHORIZATION", "SET SESSION AUTHORIZATION postgres"},
		{"RESET ROLE, then read projects", "RESET ROLE; SELECT count(*) FROM projects"},
		{"RESET ROLE, then read users", "RESET ROLE; SELECT count(*) FROM users"},
		{"RESET ROLE, then read tenants", "RESET ROLE; SELECT count(*) FROM tenants"},
		{"read tenants", "SELECT count(*) FROM tenants"},
		{"read tenant_issuers", "SELECT count(*) FROM tenant_issuers"},
		{"read context keys", "SELECT count(*) FROM erun_private.context_keys"},
		{"compute a proof with pgcrypto", "SELECT erun_private.hmac('x', 'y', 'sha256')"},
		{"look up an API key", "SELECT * FROM erun_lookup_api_key('keyglobex0001')"},
		{"RESET ROLE, then look up an API key", "RESET ROLE; SELECT * FROM erun_lookup_api_key('keyglobex0001')"},
		{"resolve an issuer", "SELECT erun_resolve_issuer('x')"},
		{"create a table", "CREATE TABLE mine (x int)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := f.as(t, f.a, func(tx pgx.Tx) error {
				_, err := tx.Conn().PgConn().Exec(ctx, c.sql).ReadAll()
				return err
			})
			if sqlstate(err) != "42501" {
				t.Fatalf("err = %v, want permission denied (42501)", err)
			}
		})
	}
}

func TestOperationsSeeAllTenantsAndResolveCredentials(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var total int
	if err := f.admin.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&total); err != nil {
		t.Fatal(err)
	}
	tx, err := f.operations.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE erun_operations"); err != nil {
		t.Fatal(err)
	}
	if got := count(t, tx, "SELECT count(*) FROM projects"); got != total {
		t.Fatalf("operations see %d projects, want all %d", got, total)
	}
	if got := count(t, tx, "SELECT count(DISTINCT tenant_id) FROM projects"); got != 2 {
		t.Fatalf("operations see projects of %d tenants, want 2", got)
	}
	tx.Rollback(ctx)

	// Credential resolution runs on the operations login itself, before any
	// SET ROLE, as the proxy will do it.
	var tenant uuid.UUID
	var role string
	if err := f.operations.QueryRow(ctx, "SELECT tenant_id, role FROM erun_lookup_api_key('keyglobex0001')").Scan(&tenant, &role); err != nil {
		t.Fatalf("lookup api key: %v", err)
	}
	if tenant != f.b.ID || role != "member" {
		t.Fatalf("lookup api key = %s/%s, want %s/member", tenant, role, f.b.ID)
	}
	if _, err := f.admin.Exec(ctx, "INSERT INTO tenant_issuers (tenant_id, issuer) VALUES ($1, 'https://id.acme.test')", f.a.ID); err != nil {
		t.Fatal(err)
	}
	var resolved *uuid.UUID
	if err := f.operations.QueryRow(ctx, "SELECT erun_resolve_issuer('https://id.acme.test')").Scan(&resolved); err != nil {
		t.Fatal(err)
	}
	if resolved == nil || *resolved != f.a.ID {
		t.Fatalf("resolve issuer = %v, want %s", resolved, f.a.ID)
	}
	if err := f.operations.QueryRow(ctx, "SELECT erun_resolve_issuer('https://unknown.test')").Scan(&resolved); err != nil || resolved != nil {
		t.Fatalf("unknown issuer resolves to %v (err %v), want NULL", resolved, err)
	}
}

func TestLoginRoleMemberships(t *testing.T) {
	f := newFixture(t)
	// A stray membership is removed by the next setup-roles run.
	if _, err := f.admin.Exec(context.Background(), "GRANT erun_operations TO "+roles.DefaultTenantLogin); err != nil {
		t.Fatal(err)
	}
	if err := roles.Apply(context.Background(), f.admin, roles.Setup{
		Tenant:     roles.Login{Name: roles.DefaultTenantLogin, Password: tenantPassword},
		Operations: roles.Login{Name: roles.DefaultOperationsLogin, Password: operationsPassword},
		ContextKey: f.key,
	}); err != nil {
		t.Fatal(err)
	}
	rows, err := f.admin.Query(context.Background(), `SELECT u.rolname, g.rolname, m.inherit_option, m.set_option, m.admin_option
        FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
        WHERE u.rolname IN ($1, $2) ORDER BY 1, 2`, roles.DefaultTenantLogin, roles.DefaultOperationsLogin)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var u, g string
		var inherit, set, admin bool
		err := r.Scan(&u, &g, &inherit, &set, &admin)
		return fmt.Sprintf("%s->%s inherit=%v set=%v admin=%v", u, g, inherit, set, admin), err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"erun_proxy_operations->erun_operations inherit=false set=true admin=false",
		"erun_proxy_tenant->erun_tenant inherit=false set=true admin=false",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("memberships:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTimestampsAreMaintained(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var id uuid.UUID
	if err := f.asTenant(t, f.a.ID, f.proof(f.a.ID), true, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO projects (name, created_at, updated_at)
            VALUES ('timed', '2000-01-01', '2000-01-01') RETURNING project_id`).Scan(&id)
	}); err != nil {
		t.Fatal(err)
	}
	var created, updated, txStart time.Time
	if err := f.admin.QueryRow(ctx, `SELECT created_at, updated_at, now() FROM projects WHERE project_id = $1`, id).Scan(&created, &updated, &txStart); err != nil {
		t.Fatal(err)
	}
	if created.Year() == 2000 || !created.Equal(updated) {
		t.Fatalf("after insert created_at=%v updated_at=%v: the trigger must set both to the insert time", created, updated)
	}
	if err := f.asTenant(t, f.a.ID, f.proof(f.a.ID), true, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE projects SET description = 'changed', created_at = '2000-01-01' WHERE project_id = $1`, id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var created2, updated2 time.Time
	if err := f.admin.QueryRow(ctx, `SELECT created_at, updated_at FROM projects WHERE project_id = $1`, id).Scan(&created2, &updated2); err != nil {
		t.Fatal(err)
	}
	if !created2.Equal(created) || !updated2.After(updated) {
		t.Fatalf("after update created_at %v -> %v, updated_at %v -> %v: want created_at kept and updated_at later", created, created2, updated, updated2)
	}
}

func TestKeysAreTimeOrderedUUIDv7(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var ids []uuid.UUID
	for i := range 20 {
		var id uuid.UUID
		if err := f.asTenant(t, f.a.ID, f.proof(f.a.ID), true, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `INSERT INTO projects (name) VALUES ($1) RETURNING project_id`, fmt.Sprintf("seq-%02d", i)).Scan(&id)
		}); err != nil {
			t.Fatal(err)
		}
		if id.Version() != 7 {
			t.Fatalf("project_id %s is UUID version %d, want 7", id, id.Version())
		}
		ids = append(ids, id)
	}
	for i := 1; i < len(ids); i++ {
		if strings.Compare(ids[i-1].String(), ids[i].String()) >= 0 {
			t.Fatalf("key %d (%s) does not sort after key %d (%s)", i, ids[i], i-1, ids[i-1])
		}
	}
}

// TestContextSerialCannotBeRewound attacks the context serial as the login
// role, as any tenant can: a proof must die once the serial moves on, and
// nothing the login role may run can bring the serial back.
func TestContextSerialCannotBeRewound(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	readA := func(proof string) error {
		return f.asTenant(t, f.a.ID, proof, false, func(tx pgx.Tx) error {
			var n int
			return tx.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n)
		})
	}
	exec := func(sql string) error { _, err := f.tenant.Exec(ctx, sql); return err }
	old := f.proof(f.a.ID)
	if err := readA(old); err != nil {
		t.Fatalf("the current proof must work: %v", err)
	}
	if err := exec("DISCARD SEQUENCES"); err != nil {
		t.Fatal(err)
	}
	if err := readA(old); err != nil {
		t.Fatalf("DISCARD SEQUENCES must not matter: %v", err)
	}
	// What pgtenant does after every loan.
	if err := f.tenant.QueryRow(ctx, "SELECT nextval('pg_temp.erun_context_serial')").Scan(&f.serial); err != nil {
		t.Fatal(err)
	}
	if err := readA(old); sqlstate(err) != "42501" || !strings.Contains(err.Error(), "stale tenant proof") {
		t.Fatalf("the previous loan's proof: err = %v, want 42501 stale tenant proof", err)
	}
	if err := readA(f.proof(f.a.ID)); err != nil {
		t.Fatalf("the new proof must work: %v", err)
	}
	oldSerial := strings.Split(old, ":")[1]
	for _, sql := range []string{
		"SELECT setval('pg_temp.erun_context_serial', " + oldSerial + ")",
		"SELECT setval('pg_temp.erun_context_serial', " + oldSerial + ", false)",
		"ALTER SEQUENCE pg_temp.erun_context_serial RESTART WITH " + oldSerial,
		"ALTER SEQUENCE pg_temp.erun_context_serial INCREMENT BY -1",
		"DROP SEQUENCE pg_temp.erun_context_serial",
		"SELECT erun_open_context_serial()",
		"SET ROLE erun_tenant; SELECT setval('pg_temp.erun_context_serial', " + oldSerial + ")",
	} {
		if err := exec(sql); sqlstate(err) != "42501" {
			t.Errorf("%s: err = %v, want 42501", sql, err)
		}
		exec("RESET ROLE")
	}
	if err := readA(old); sqlstate(err) != "42501" {
		t.Fatalf("after the attempts the old proof: err = %v, want 42501", err)
	}

	// Another backend of the same login role: A's proof for f.tenant's
	// backend is worthless there, whatever its serial.
	db := f.tenant.Config().Database
	other := pgtest.Connect(t, pgtest.Shared(t).DSN(roles.DefaultTenantLogin, tenantPassword, db))
	var otherSerial int64
	if err := other.QueryRow(ctx, "SELECT erun_open_context_serial()").Scan(&otherSerial); err != nil {
		t.Fatal(err)
	}
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	frame := fmt.Sprintf("SET LOCAL ROLE erun_tenant; SET LOCAL erun.tenant_id = '%s'; SET LOCAL erun.tenant_proof = '%s:%d:%s'",
		f.a.ID, f.key.ID, otherSerial, strings.Split(f.proof(f.a.ID), ":")[2])
	if _, err := tx.Exec(ctx, frame); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n); sqlstate(err) != "42501" {
		t.Fatalf("a proof made for another backend: err = %v, want 42501", err)
	}
	tx.Rollback(ctx)

	// Discarding the temporary objects leaves the connection without any
	// tenant context for good.
	if err := exec("DISCARD TEMP"); err != nil {
		t.Fatal(err)
	}
	if err := readA(f.proof(f.a.ID)); sqlstate(err) != "42501" || !strings.Contains(err.Error(), "no context serial") {
		t.Fatalf("after DISCARD TEMP: err = %v, want 42501 no context serial", err)
	}
	for _, sql := range []string{
		"SELECT erun_open_context_serial()",
		"CREATE TEMPORARY SEQUENCE erun_context_serial",
	} {
		if err := exec(sql); sqlstate(err) != "42501" {
			t.Errorf("after DISCARD TEMP, %s: err = %v, want 42501", sql, err)
		}
	}
}

// BenchmarkCurrentTenantID: the server-side cost of one verification of
// the tenant context, as a policy's initplan pays it once per statement.
// The loop runs inside the server, so no round trip is counted.
func BenchmarkCurrentTenantID(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	const calls = 20000
	tx, err := f.tenant.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback(ctx)
	frame := fmt.Sprintf("SET LOCAL ROLE erun_tenant; SET LOCAL erun.tenant_id = '%s'; SET LOCAL erun.tenant_proof = '%s'", f.a.ID, f.proof(f.a.ID))
	if _, err := tx.Exec(ctx, frame); err != nil {
		b.Fatal(err)
	}
	loop := fmt.Sprintf("DO $$ BEGIN FOR i IN 1..%d LOOP PERFORM erun_current_tenant_id(); END LOOP; END $$", calls)
	for b.Loop() {
		if _, err := tx.Exec(ctx, loop); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*calls), "ns/check")
}
