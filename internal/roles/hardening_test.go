package roles_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtenant/pgtenant/internal/migrate"
	"github.com/pgtenant/pgtenant/internal/pgtest"
	"github.com/pgtenant/pgtenant/internal/roles"
	"github.com/pgtenant/pgtenant/internal/tenantctx"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	tenantPassword     = "roles-test-tenant-login"
	operationsPassword = "roles-test-operations-login"
)

// hardened is a migrated database on which setup-roles ran. Login roles are
// cluster-wide, so the tests of this package do not run in parallel.
type hardened struct {
	srv    *pgtest.Server
	db     string
	admin  *pgx.Conn
	tenant *pgx.Conn // a connection as the tenant login role
}

func setup(t *testing.T) *hardened {
	t.Helper()
	ctx := context.Background()
	srv := pgtest.Shared(t)
	name, dsn := srv.CreateDatabase(t)
	if _, err := migrate.Run(ctx, dsn, migrate.Options{}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	admin := pgtest.Connect(t, dsn)
	apply(t, admin)
	h := &hardened{srv: srv, db: name, admin: admin}
	h.tenant = h.login(t, roles.DefaultTenantLogin)
	return h
}

// testSetup is what the tests install; rerunning it is a no-op.
var testSetup = sync.OnceValue(func() roles.Setup {
	key, err := tenantctx.GenerateKey("roles-test-1")
	if err != nil {
		panic(err)
	}
	return roles.Setup{
		Tenant:     roles.Login{Name: roles.DefaultTenantLogin, Password: tenantPassword},
		Operations: roles.Login{Name: roles.DefaultOperationsLogin, Password: operationsPassword},
		ContextKey: key,
	}
})

func apply(t *testing.T, admin *pgx.Conn) {
	t.Helper()
	if err := roles.Apply(context.Background(), admin, testSetup()); err != nil {
		t.Fatalf("setup roles: %v", err)
	}
}

// login connects directly to the server as a login role, as the proxy's
// server connections do.
func (h *hardened) login(t *testing.T, role string) *pgx.Conn {
	t.Helper()
	pw := tenantPassword
	if role == roles.DefaultOperationsLogin {
		pw = operationsPassword
	}
	return pgtest.Connect(t, h.srv.DSN(role, pw, h.db))
}

// A tenant attacks as the login role itself, or from erun_tenant (which it
// can leave at any moment); each attack must fail the same way in all three.
var attackModes = []struct{ name, enter string }{
	{"login role", ""},
	{"set_config role", "SELECT set_config('role', 'erun_tenant', false)"},
	{"SET ROLE", "SET ROLE erun_tenant"},
}

type attack struct {
	name, sql string
	// loginOnly: the attack names CURRENT_USER, which is the login role
	// only in the first mode (as erun_tenant, RESET of a setting
	// erun_tenant does not have is a no-op that PostgreSQL accepts).
	loginOnly bool
	// unchanged fails the test if the attack had an effect.
	unchanged func(t *testing.T)
}

// runAttacks runs each attack in each mode on conn and wants 42501 and no
// effect.
func runAttacks(t *testing.T, conn *pgx.Conn, attacks []attack) {
	t.Helper()
	ctx := context.Background()
	for _, mode := range attackModes {
		for _, a := range attacks {
			if a.loginOnly && mode.enter != "" {
				continue
			}
			t.Run(mode.name+"/"+a.name, func(t *testing.T) {
				if mode.enter != "" {
					if _, err := conn.Exec(ctx, mode.enter); err != nil {
						t.Fatalf("%s: %v", mode.enter, err)
					}
					defer func() {
						if _, err := conn.Exec(ctx, "RESET ROLE"); err != nil {
							t.Errorf("RESET ROLE: %v", err)
						}
					}()
				}
				_, err := conn.Exec(ctx, a.sql)
				if code := sqlstate(err); code != "42501" {
					t.Errorf("%s: err = %v (SQLSTATE %q), want 42501", a.sql, err, code)
				}
				a.unchanged(t)
			})
		}
	}
}

func sqlstate(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func queryStrings(t *testing.T, conn *pgx.Conn, sql string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func queryString(t *testing.T, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// roleSettings is every pg_db_role_setting entry of role, in all databases.
func roleSettings(t *testing.T, admin *pgx.Conn, role string) []string {
	t.Helper()
	return queryStrings(t, admin, `SELECT s.setdatabase || ':' || c FROM pg_db_role_setting s, unnest(s.setconfig) c
        WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1) ORDER BY 1`, role)
}

func pinnedStrings(db string) []string {
	var want []string
	for _, s := range roles.PinnedSettings {
		want = append(want, db+":"+s.String())
	}
	slices.Sort(want)
	return want
}

func TestPinnedSettingsAreSuperuserOnly(t *testing.T) {
	h := setup(t)
	for _, s := range roles.PinnedSettings {
		var sc string
		err := h.admin.QueryRow(context.Background(), "SELECT context FROM pg_settings WHERE name = $1", s.Name).Scan(&sc)
		if s.Name == "pg_stat_statements.track" {
			// A placeholder unless the module is preloaded.
			if err == nil && sc != "superuser" {
				t.Errorf("%s: context %q, want superuser", s.Name, sc)
			}
			continue
		}
		if err != nil || sc != "superuser" {
			t.Errorf("%s: context %q (%v), want superuser", s.Name, sc, err)
		}
	}
}

// pinnedRecord is what setup-roles pins on the login roles (the record:
// the tests below read roles.PinnedSettings, this catches a pin removed
// from it).
var pinnedRecord = []roles.Setting{
	{Name: "track_activities", Value: "off"},
	{Name: "log_statement", Value: "none"},
	{Name: "log_min_error_statement", Value: "panic"},
	{Name: "log_min_duration_statement", Value: "-1"},
	{Name: "log_min_duration_sample", Value: "-1"},
	{Name: "log_transaction_sample_rate", Value: "0"},
	{Name: "log_duration", Value: "off"},
	{Name: "log_parameter_max_length", Value: "0"},
	{Name: "log_error_verbosity", Value: "terse"},
	{Name: "pg_stat_statements.track", Value: "none"},
}

func TestLoginRolesHaveExactlyThePinnedSettings(t *testing.T) {
	h := setup(t)
	if !slices.Equal(roles.PinnedSettings, pinnedRecord) {
		t.Errorf("roles.PinnedSettings:\n got %v\nwant %v", roles.PinnedSettings, pinnedRecord)
	}
	for _, role := range []string{roles.DefaultTenantLogin, roles.DefaultOperationsLogin} {
		if got, want := roleSettings(t, h.admin, role), pinnedStrings("0"); !slices.Equal(got, want) {
			t.Errorf("%s settings:\n got %v\nwant %v", role, got, want)
		}
		conn := h.login(t, role)
		for _, s := range pinnedRecord {
			if got := queryString(t, conn, "SELECT current_setting($1)", s.Name); got != s.Value {
				t.Errorf("%s: %s = %q on a login connection, want %q", role, s.Name, got, s.Value)
			}
		}
	}
	if got := queryString(t, h.tenant, "SHOW track_activities"); got != "off" {
		t.Errorf("SHOW track_activities = %q on a login connection, want off", got)
	}
}

func TestApplyRemovesSettingsATenantAdded(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	// PostgreSQL lets a role give itself defaults of any user-settable
	// parameter; the next setup-roles removes them.
	for _, stmt := range []string{
		"ALTER ROLE CURRENT_USER SET statement_timeout = '1ms'",
		"ALTER ROLE CURRENT_USER IN DATABASE " + h.db + " SET search_path = 'nowhere'",
	} {
		if _, err := h.tenant.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if got := roleSettings(t, h.admin, roles.DefaultTenantLogin); slices.Equal(got, pinnedStrings("0")) {
		t.Fatal("the tenant's own role settings were not stored; the test proves nothing")
	}
	apply(t, h.admin)
	if got, want := roleSettings(t, h.admin, roles.DefaultTenantLogin), pinnedStrings("0"); !slices.Equal(got, want) {
		t.Errorf("after a second setup-roles:\n got %v\nwant %v", got, want)
	}
}

func TestLoginRoleCannotChangePinnedSettings(t *testing.T) {
	h := setup(t)
	before := roleSettings(t, h.admin, roles.DefaultTenantLogin)
	unchanged := func(t *testing.T) {
		t.Helper()
		if got := roleSettings(t, h.admin, roles.DefaultTenantLogin); !slices.Equal(got, before) {
			t.Errorf("role settings changed:\n got %v\nwant %v", got, before)
		}
		if got := queryString(t, h.tenant, "SHOW track_activities"); got != "off" {
			t.Errorf("track_activities = %s", got)
		}
		if got := queryString(t, h.tenant, "SHOW log_statement"); got != "none" {
			t.Errorf("log_statement = %s", got)
		}
		if got := queryString(t, h.tenant, "SHOW log_error_verbosity"); got != "terse" {
			t.Errorf("log_error_verbosity = %s", got)
		}
	}
	var attacks []attack
	for _, sql := range []string{
		"SET track_activities = on",
		"SELECT set_config('track_activities', 'on', false)",
		"SET log_statement = 'all'",
		"SET log_error_verbosity = verbose",
		"SELECT set_config('log_error_verbosity', 'default', false)",
		"ALTER ROLE SESSION_USER RESET log_error_verbosity",
		"ALTER ROLE CURRENT_USER RESET track_activities",
		"ALTER ROLE CURRENT_USER SET log_min_error_statement = 'debug5'",
		"ALTER ROLE SESSION_USER RESET track_activities",
		"ALTER ROLE SESSION_USER SET log_min_error_statement = 'debug5'",
		"ALTER ROLE SESSION_USER RESET pg_stat_statements.track",
		"ALTER ROLE " + roles.DefaultTenantLogin + " IN DATABASE " + h.db + " SET track_activities = on",
	} {
		attacks = append(attacks, attack{name: sql, sql: sql, unchanged: unchanged,
			loginOnly: strings.Contains(sql, "CURRENT_USER")})
	}
	runAttacks(t, h.tenant, attacks)

	// RESET ALL is accepted but leaves superuser-only settings alone.
	if _, err := h.tenant.Exec(context.Background(), "ALTER ROLE CURRENT_USER RESET ALL"); err != nil {
		t.Fatalf("RESET ALL: %v", err)
	}
	unchanged(t)
}

func TestLoginRoleCannotSignalOtherBackends(t *testing.T) {
	h := setup(t)
	victim := h.login(t, roles.DefaultTenantLogin) // another tenant's server connection
	pid := victim.PgConn().PID()
	alive := func(t *testing.T) {
		t.Helper()
		if _, err := victim.Exec(context.Background(), "SELECT 1"); err != nil {
			t.Fatalf("the other backend is gone: %v", err)
		}
	}
	var attacks []attack
	for _, sql := range []string{
		fmt.Sprintf("SELECT pg_terminate_backend(%d)", pid),
		fmt.Sprintf("SELECT pg_terminate_backend(%d, 1000)", pid),
		fmt.Sprintf("SELECT pg_cancel_backend(%d)", pid),
	} {
		attacks = append(attacks, attack{name: strings.Fields(sql)[1], sql: sql, unchanged: alive})
	}
	runAttacks(t, h.tenant, attacks)

	// A member of pg_signal_backend keeps the functions.
	if got := queryString(t, h.admin, `SELECT string_agg(f || '=' || has_function_privilege('pg_signal_backend', f, 'EXECUTE'), ',' ORDER BY f)
        FROM unnest(ARRAY['pg_cancel_backend(integer)', 'pg_terminate_backend(integer,bigint)']) f`); got !=
		"pg_cancel_backend(integer)=true,pg_terminate_backend(integer,bigint)=true" {
		t.Errorf("pg_signal_backend: %s", got)
	}
}

func TestLoginRoleHasNoLargeObjects(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	// A large object of the login role, as one created before setup-roles
	// hardened it would be: readable and writable by every tenant.
	var oid uint32
	if err := h.admin.QueryRow(ctx, "SELECT lo_from_bytea(0, 'other tenant')").Scan(&oid); err != nil {
		t.Fatal(err)
	}
	if _, err := h.admin.Exec(ctx, fmt.Sprintf("ALTER LARGE OBJECT %d OWNER TO %s", oid, roles.DefaultTenantLogin)); err != nil {
		t.Fatal(err)
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		if got := queryString(t, h.admin, "SELECT string_agg(oid::text, ',') FROM pg_largeobject_metadata"); got != fmt.Sprint(oid) {
			t.Errorf("large objects: %s, want only %d", got, oid)
		}
		if got := queryString(t, h.admin, "SELECT convert_from(lo_get($1), 'UTF8')", oid); got != "other tenant" {
			t.Errorf("large object %d holds %q", oid, got)
		}
	}
	var attacks []attack
	for _, sql := range []string{
		"SELECT lo_creat(-1)",
		"SELECT lo_create(0)",
		"SELECT lo_from_bytea(0, 'mine')",
		fmt.Sprintf("SELECT lo_get(%d)", oid),
		fmt.Sprintf("SELECT lo_get(%d, 0, 5)", oid),
		fmt.Sprintf("SELECT lo_put(%d, 0, 'x')", oid),
		fmt.Sprintf("SELECT lo_open(%d, 393216)", oid),
		fmt.Sprintf("SELECT lo_unlink(%d)", oid),
	} {
		attacks = append(attacks, attack{name: strings.Fields(sql)[1], sql: sql, unchanged: unchanged})
	}
	runAttacks(t, h.tenant, attacks)
}

func TestLoginRoleHasNoSessionAdvisoryLocks(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	none := func(t *testing.T) {
		t.Helper()
		if n := queryString(t, h.admin, "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory'"); n != "0" {
			t.Errorf("%s advisory locks held", n)
		}
	}
	var attacks []attack
	for _, sql := range []string{
		"SELECT pg_advisory_lock(42)",
		"SELECT pg_advisory_lock(4, 2)",
		"SELECT pg_advisory_lock_shared(42)",
		"SELECT pg_try_advisory_lock(42)",
		"SELECT pg_try_advisory_lock_shared(4, 2)",
		"SELECT pg_advisory_unlock(42)",
		"SELECT pg_advisory_unlock_all()",
	} {
		attacks = append(attacks, attack{name: strings.Fields(sql)[1], sql: sql, unchanged: none})
	}
	runAttacks(t, h.tenant, attacks)

	// Transaction-level locks stay usable, also as erun_tenant.
	for _, mode := range attackModes {
		tx, err := h.tenant.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if mode.enter != "" {
			if _, err := tx.Exec(ctx, mode.enter); err != nil {
				t.Fatal(err)
			}
		}
		var got bool
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(42)"); err != nil {
			t.Errorf("%s: pg_advisory_xact_lock: %v", mode.name, err)
		} else if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock_shared(4, 2)").Scan(&got); err != nil || !got {
			t.Errorf("%s: pg_try_advisory_xact_lock_shared = %v, %v", mode.name, got, err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := h.tenant.Exec(ctx, "RESET ROLE"); err != nil {
			t.Fatal(err)
		}
	}
	none(t)
}

// TestOtherBackendsShowNoQueryText: another backend of the same login role
// (another tenant's server connection) is not readable in pg_stat_activity
// at all, by the login role or by erun_tenant (42501, pg_stat_get_activity
// is revoked), and with track_activities off even a superuser reads no
// query text there.
func TestOtherBackendsShowNoQueryText(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(h.srv.DSN(roles.DefaultTenantLogin, tenantPassword, h.db))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = "other-tenant"
	other, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	pid := other.PgConn().PID()

	const secret = "SELECT pg_sleep(1) /* proof 7f3a */"
	done := make(chan error, 1)
	go func() {
		_, err := other.Exec(ctx, secret)
		done <- err
	}()
	type activity struct{ state, query, wait, app string }
	read := func(conn *pgx.Conn) (a activity, err error) {
		err = conn.QueryRow(ctx, `SELECT coalesce(state, '<null>'), coalesce(query, '<null>'), coalesce(wait_event, ''), coalesce(application_name, '')
            FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&a.state, &a.query, &a.wait, &a.app)
		return a, err
	}
	// The superuser waits for the statement to run: its only sign is its
	// wait event.
	var asAdmin activity
	for deadline := time.Now().Add(700 * time.Millisecond); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if asAdmin, err = read(h.admin); err != nil {
			t.Fatalf("the superuser reading pg_stat_activity: %v", err)
		}
		if asAdmin.wait == "PgSleep" {
			break
		}
	}
	// While it runs, the login role and erun_tenant are refused.
	for _, mode := range attackModes {
		if mode.enter != "" {
			if _, err := h.tenant.Exec(ctx, mode.enter); err != nil {
				t.Fatalf("%s: %v", mode.enter, err)
			}
		}
		a, err := read(h.tenant)
		if code := sqlstate(err); code != "42501" || !strings.Contains(err.Error(), "pg_stat_get_activity") {
			t.Errorf("%s reading pg_stat_activity: %+v, err = %v (SQLSTATE %q), want 42501 on pg_stat_get_activity", mode.name, a, err, code)
		}
		if _, err := h.tenant.Exec(ctx, "RESET ROLE"); err != nil {
			t.Fatalf("RESET ROLE: %v", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("the other backend's statement: %v", err)
	}
	t.Logf("pg_stat_activity of a busy login-role backend, read by a superuser: %+v", asAdmin)
	if asAdmin.query != "" || strings.Contains(asAdmin.query, "proof") {
		t.Errorf("a superuser reads query %q, want none", asAdmin.query)
	}
	if asAdmin.state != "disabled" {
		t.Errorf("a superuser reads state %q, want disabled", asAdmin.state)
	}
}

// TestLoginRoleCannotReadOtherBackends: pg_stat_activity, the views built
// on pg_stat_get_activity and the per-backend statistics functions are
// refused to the login role and to erun_tenant; they would show another
// tenant's backend (its application_name, wait events, I/O).
func TestLoginRoleCannotReadOtherBackends(t *testing.T) {
	h := setup(t)
	victim := h.login(t, roles.DefaultTenantLogin) // another tenant's server connection
	pid := victim.PgConn().PID()
	nothing := func(*testing.T) {} // reads: there is no effect to check
	var attacks []attack
	for _, sql := range []string{
		"SELECT count(*) FROM pg_stat_activity",
		fmt.Sprintf("SELECT application_name FROM pg_stat_activity WHERE pid = %d", pid),
		fmt.Sprintf("SELECT * FROM pg_stat_get_activity(%d)", pid),
		"SELECT * FROM pg_stat_get_activity(NULL)",
		"SELECT count(*) FROM pg_stat_ssl",
		"SELECT count(*) FROM pg_stat_gssapi",
		"SELECT * FROM pg_stat_get_backend_idset()",
		"SELECT pg_stat_get_backend_pid(1)",
		"SELECT pg_stat_get_backend_activity(1)",
		"SELECT pg_stat_get_backend_wait_event(1)",
		"SELECT pg_stat_get_backend_client_addr(1)",
		fmt.Sprintf("SELECT * FROM pg_stat_get_backend_io(%d)", pid),
		fmt.Sprintf("SELECT * FROM pg_stat_get_backend_wal(%d)", pid),
	} {
		name := strings.Fields(sql)[1]
		if name == "*" || name == "count(*)" || name == "application_name" {
			name = sql[strings.Index(sql, "FROM ")+5:]
		}
		name = strings.ReplaceAll(name, fmt.Sprint(pid), "pid")
		attacks = append(attacks, attack{name: name, sql: sql, unchanged: nothing})
	}
	runAttacks(t, h.tenant, attacks)
}

// revokedFunctions is what setup-roles revokes on PostgreSQL 18 (Apply
// finds them in pg_proc by name; this list is the record).
var revokedFunctions = []string{
	"pg_cancel_backend(integer)", "pg_terminate_backend(integer,bigint)",

	"lo_close(integer)", "lo_creat(integer)", "lo_create(oid)", "lo_export(oid,text)",
	"lo_from_bytea(oid,bytea)", "lo_get(oid)", "lo_get(oid,bigint,integer)", "lo_import(text)",
	"lo_import(text,oid)", "lo_lseek(integer,integer,integer)", "lo_lseek64(integer,bigint,integer)",
	"lo_open(oid,integer)", "lo_put(oid,bigint,bytea)", "lo_tell(integer)", "lo_tell64(integer)",
	"lo_truncate(integer,integer)", "lo_truncate64(integer,bigint)", "lo_unlink(oid)",
	"loread(integer,integer)", "lowrite(integer,bytea)",

	"pg_advisory_lock(bigint)", "pg_advisory_lock(integer,integer)",
	"pg_advisory_lock_shared(bigint)", "pg_advisory_lock_shared(integer,integer)",
	"pg_advisory_unlock(bigint)", "pg_advisory_unlock(integer,integer)", "pg_advisory_unlock_all()",
	"pg_advisory_unlock_shared(bigint)", "pg_advisory_unlock_shared(integer,integer)",
	"pg_try_advisory_lock(bigint)", "pg_try_advisory_lock(integer,integer)",
	"pg_try_advisory_lock_shared(bigint)", "pg_try_advisory_lock_shared(integer,integer)",

	"pg_stat_get_activity(integer)",
	"pg_stat_get_backend_activity(integer)", "pg_stat_get_backend_activity_start(integer)",
	"pg_stat_get_backend_client_addr(integer)", "pg_stat_get_backend_client_port(integer)",
	"pg_stat_get_backend_dbid(integer)", "pg_stat_get_backend_idset()", "pg_stat_get_backend_io(integer)",
	"pg_stat_get_backend_pid(integer)", "pg_stat_get_backend_start(integer)",
	"pg_stat_get_backend_subxact(integer)", "pg_stat_get_backend_userid(integer)",
	"pg_stat_get_backend_wait_event(integer)", "pg_stat_get_backend_wait_event_type(integer)",
	"pg_stat_get_backend_wal(integer)", "pg_stat_get_backend_xact_start(integer)",
}

// TestNoLoginRoleCanReachRevokedFunctions checks the catalog: neither PUBLIC
// nor a login role nor its group may execute a revoked function; the
// transaction-level advisory locks stay PUBLIC, and pg_read_all_stats keeps
// the activity functions.
func TestNoLoginRoleCanReachRevokedFunctions(t *testing.T) {
	h := setup(t)
	family := `p.pronamespace = 'pg_catalog'::regnamespace
        AND (p.proname ~ '^(lo_|pg_cancel_backend|pg_terminate_backend|pg_advisory_|pg_try_advisory_|pg_stat_get_backend_|pg_stat_get_activity)'
            OR p.proname IN ('loread', 'lowrite'))`
	for _, role := range []string{"erun_tenant", "erun_operations", roles.DefaultTenantLogin, roles.DefaultOperationsLogin} {
		got := queryStrings(t, h.admin, `SELECT p.oid::regprocedure::text FROM pg_proc p
            WHERE `+family+` AND NOT has_function_privilege($1, p.oid, 'EXECUTE') ORDER BY 1`, role)
		want := slices.Sorted(slices.Values(revokedFunctions))
		if !slices.Equal(got, want) {
			t.Errorf("%s may not execute:\n %v\nwant\n %v", role, got, want)
		}
	}
	if got := queryStrings(t, h.admin, `SELECT p.oid::regprocedure::text FROM pg_proc p, aclexplode(p.proacl) a
        WHERE `+family+` AND a.grantee = 0 ORDER BY 1`); len(got) > 0 {
		t.Errorf("PUBLIC still holds %v", got)
	}
	if got := queryStrings(t, h.admin, `SELECT p.oid::regprocedure::text FROM pg_proc p
        WHERE p.proname ~ 'advisory_xact' AND NOT has_function_privilege('erun_tenant', p.oid, 'EXECUTE')`); len(got) > 0 {
		t.Errorf("transaction-level advisory locks revoked: %v", got)
	}
	// Monitoring roles keep the activity functions.
	if got := queryStrings(t, h.admin, `SELECT p.oid::regprocedure::text FROM pg_proc p
        WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname ~ '^(pg_stat_get_activity$|pg_stat_get_backend_)'
        AND NOT (has_function_privilege('pg_read_all_stats', p.oid, 'EXECUTE') AND has_function_privilege('pg_monitor', p.oid, 'EXECUTE'))`); len(got) > 0 {
		t.Errorf("pg_read_all_stats (or pg_monitor) may not execute %v", got)
	}
}

// TestApplyRefusesAReachableGrant: a grant Apply cannot undo (a membership
// of a group role) makes it fail instead of leaving the hole open.
func TestApplyRefusesAReachableGrant(t *testing.T) {
	h := setup(t)
	ctx := context.Background()
	// A direct grant to the group is revoked.
	if _, err := h.admin.Exec(ctx, "GRANT EXECUTE ON FUNCTION lo_creat(integer) TO erun_operations"); err != nil {
		t.Fatal(err)
	}
	apply(t, h.admin)
	if queryString(t, h.admin, "SELECT has_function_privilege('erun_operations', 'lo_creat(integer)', 'EXECUTE')::text") != "false" {
		t.Error("erun_operations keeps a direct grant of lo_creat")
	}
	// One through a membership is refused.
	for _, stmt := range []string{
		"CREATE ROLE roles_test_locker NOLOGIN",
		"GRANT EXECUTE ON FUNCTION pg_advisory_lock(bigint) TO roles_test_locker",
		"GRANT roles_test_locker TO erun_operations",
	} {
		if _, err := h.admin.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	t.Cleanup(func() {
		h.admin.Exec(ctx, "DROP OWNED BY roles_test_locker")
		h.admin.Exec(ctx, "DROP ROLE roles_test_locker")
	})
	err := roles.Apply(ctx, h.admin, testSetup())
	if err == nil || !strings.Contains(err.Error(), "pg_advisory_lock(bigint)") {
		t.Fatalf("Apply with erun_operations a member of a role holding pg_advisory_lock: %v", err)
	}
}
