package proxy_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtenant/pgtenant/internal/proxytest"
	"github.com/pgtenant/pgtenant/internal/roles"
	"github.com/pgtenant/pgtenant/proxy"
)

// The threat model: a tenant can act as the login role of its server
// connection at any moment. These tests do exactly that, through the
// proxy, in every spelling we know, and check that PostgreSQL itself
// makes it harmless. Nothing here relies on pgtenant inspecting SQL.

// loginRoleSpellings run stmt after dropping back to the login role.
var loginRoleSpellings = []struct {
	name string
	run  func(ctx context.Context, c *pgx.Conn, stmt string) error
}{
	{"set_config", func(ctx context.Context, c *pgx.Conn, stmt string) error {
		return execAll(ctx, c, "SELECT set_config('role', 'none', true); "+stmt)
	}},
	{"RESET ROLE", func(ctx context.Context, c *pgx.Conn, stmt string) error {
		return execAll(ctx, c, "RESET ROLE; "+stmt)
	}},
	{"DO EXECUTE", func(ctx context.Context, c *pgx.Conn, stmt string) error {
		if strings.HasPrefix(stmt, "DO ") {
			return execAll(ctx, c, "SELECT set_config('role', 'none', true); "+stmt)
		}
		return execAll(ctx, c, "DO $pgt$ BEGIN PERFORM set_config('role', 'none', true); EXECUTE $q$"+stmt+"$q$; END $pgt$")
	}},
	{"extended RESET ROLE", func(ctx context.Context, c *pgx.Conn, stmt string) error {
		tx, err := c.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "RESET ROLE", pgx.QueryExecModeCacheDescribe); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, stmt, pgx.QueryExecModeCacheDescribe)
		return err
	}},
}

// dynamic runs stmt through dynamic SQL, its text assembled at run time,
// so that no inspection of the query string can recognise it.
func dynamic(stmt string) string {
	half := len(stmt) / 2
	return "DO $pgt$ BEGIN EXECUTE '" + stmt[:half] + "' || '" + stmt[half:] + "'; END $pgt$"
}

// execAll runs a query string over the simple protocol and returns the
// first error of any of its statements.
func execAll(ctx context.Context, c *pgx.Conn, sql string) error {
	results, err := c.PgConn().Exec(ctx, sql).ReadAll()
	if err != nil {
		return err
	}
	for _, r := range results {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// TestLoginRoleIsHarmless: each statement is something the login role
// could do to other tenants. PostgreSQL must refuse it (42501) in every
// spelling, and afterwards nothing happened: tenant B's connection is
// alive, its rows are unchanged, and the attacker's next transaction is
// an ordinary one.
func TestLoginRoleIsHarmless(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 3"})
	ctx := context.Background()
	B := e.B.ID.String()
	var lo uint32
	if err := e.Admin.QueryRow(ctx, "SELECT lo_from_bytea(0, 'another tenant''s file')").Scan(&lo); err != nil {
		t.Fatal(err)
	}
	// Tenant B keeps a server connection busy, so that there is another
	// backend of the login role to attack.
	victim := e.Connect(e.Token(e.B.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
	tx, err := victim.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var victimPID int
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&victimPID); err != nil {
		t.Fatal(err)
	}
	login := roles.DefaultTenantLogin
	attacks := []struct{ name, stmt string }{
		{"terminate B's backend", fmt.Sprintf("SELECT pg_terminate_backend(%d)", victimPID)},
		{"cancel B's backend", fmt.Sprintf("SELECT pg_cancel_backend(%d)", victimPID)},
		{"terminate every backend it can see", "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE pid <> pg_backend_pid()"},
		{"create a large object", "SELECT lo_from_bytea(0, 'x')"},
		{"read another's large object", fmt.Sprintf("SELECT lo_get(%d)", lo)},
		{"unlink another's large object", fmt.Sprintf("SELECT lo_unlink(%d)", lo)},
		{"open another's large object", fmt.Sprintf("SELECT lo_open(%d, 262144)", lo)},
		// pgtenant's scanner refuses these by name; spelled at run time,
		// PostgreSQL must refuse them itself.
		{"session advisory lock", dynamic("SELECT pg_advisory_lock(42)")},
		{"try a session advisory lock", dynamic("SELECT pg_try_advisory_lock(1, 2)")},
		{"release all advisory locks", dynamic("SELECT pg_advisory_unlock_all()")},
		{"a tenant of its own by role default", "ALTER ROLE CURRENT_USER SET erun.tenant_id = '" + B + "'"},
		{"turn query tracking back on", "SET track_activities = on"},
		{"turn it on for the role", "ALTER ROLE CURRENT_USER SET track_activities = on"},
		{"log every statement of the role", "ALTER ROLE CURRENT_USER SET log_statement = 'all'"},
		{"log the statements of errors", "ALTER ROLE " + login + " SET log_min_error_statement = 'error'"},
		{"reset the pinned settings", "ALTER ROLE " + login + " RESET track_activities"},
		{"create a temporary table", "CREATE TEMPORARY TABLE harvest (q text)"},
		{"rewind the context serial", "SELECT setval('pg_temp.erun_context_serial', 1)"},
		{"restart the context serial", "ALTER SEQUENCE pg_temp.erun_context_serial RESTART"},
		{"open a second context serial", "SELECT erun_open_context_serial()"},
		{"read the context keys", "SELECT count(*) FROM erun_private.context_keys"},
		{"read projects as the login role", "SELECT count(*) FROM projects"},
		{"delete projects as the login role", "DELETE FROM projects"},
		{"update tasks as the login role", "UPDATE tasks SET title = 'x'"},
		{"become operations", "SET ROLE erun_operations"},
		{"forge B's tenant as erun_tenant", "SET ROLE erun_tenant; SELECT set_config('erun.tenant_id', '" + B + "', true); DELETE FROM projects"},
		{"grant itself another role", "GRANT erun_operations TO " + login},
		{"give itself a login of another tenant", "CREATE ROLE sneaky LOGIN"},
	}
	before := digestOf(t, e, e.B.ID.String())
	for _, sp := range loginRoleSpellings {
		for _, a := range attacks {
			if sp.name == "DO EXECUTE" && strings.Contains(a.stmt, "; ") {
				continue // several statements: covered by the other spellings
			}
			if sp.name == "extended RESET ROLE" && strings.Contains(a.stmt, "; ") {
				continue // the extended protocol takes one statement per Parse
			}
			t.Run(sp.name+"/"+a.name, func(t *testing.T) {
				conn := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
				err := sp.run(ctx, conn, a.stmt)
				if got := sqlstate(err); got != "42501" {
					t.Fatalf("err = %v (SQLSTATE %q), want 42501", err, got)
				}
				probe(t, conn, e)
			})
		}
	}
	// B's backend survived every attempt, its transaction is intact, and
	// so are its rows and its large object.
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n); err != nil || n != 2 {
		t.Fatalf("tenant B after the attacks: %d projects, %v", n, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if after := digestOf(t, e, e.B.ID.String()); after != before {
		t.Fatal("tenant B's rows changed")
	}
	var data string
	if err := e.Admin.QueryRow(ctx, "SELECT convert_from(lo_get($1), 'UTF8')", lo).Scan(&data); err != nil || data != "another tenant's file" {
		t.Fatalf("the large object: %q, %v", data, err)
	}
	var settings []string
	if err := e.Admin.QueryRow(ctx, `SELECT coalesce(array_agg(c ORDER BY c), '{}') FROM pg_db_role_setting s, unnest(s.setconfig) c
        WHERE s.setrole = $1::regrole`, login).Scan(&settings); err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		if strings.HasPrefix(s, "track_activities=") && s != "track_activities=off" || strings.HasPrefix(s, "log_statement=all") {
			t.Fatalf("the login role's settings changed: %v", settings)
		}
	}
}

// digestOf summarises tenant's projects and tasks, read as the owner.
func digestOf(t *testing.T, e *proxytest.Env, tenant string) string {
	t.Helper()
	var d string
	if err := e.Admin.QueryRow(context.Background(), `SELECT
        (SELECT coalesce(md5(string_agg(p::text, ',' ORDER BY p::text)), '') FROM projects p WHERE tenant_id = $1) ||
        (SELECT coalesce(md5(string_agg(k::text, ',' ORDER BY k::text)), '') FROM tasks k WHERE tenant_id = $1)`, tenant).Scan(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

var proofRe = regexp.MustCompile(`erun\.tenant_proof = '([A-Za-z0-9_.-]+:[0-9]+:[0-9a-f]{64})'`)

// TestReplayedProofIsRefused: a proof seen while tenant B runs (here the
// test reads it as superuser from pg_stat_activity, with query tracking
// turned back on for this database, as if every other defence had
// failed) must not give tenant A B's rows: not on the same server
// connection in a later transaction, and not on another connection.
func TestReplayedProofIsRefused(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 2", WatchActivity: true})
	ctx := context.Background()
	victim := e.Connect(e.Token(e.B.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int
			if err := victim.QueryRow(ctx, "SELECT count(*) FROM projects, pg_sleep(0.02)").Scan(&n); err != nil || n != 2 {
				t.Errorf("tenant B: %d projects, %v", n, err)
				return
			}
		}
	}()
	var proof string
	var pid int
	deadline := time.Now().Add(10 * time.Second)
	for proof == "" && time.Now().Before(deadline) {
		var q string
		err := e.Admin.QueryRow(ctx, `SELECT pid, query FROM pg_stat_activity
            WHERE query LIKE '%erun.tenant_proof%' AND query LIKE '%`+e.B.ID.String()+`%' AND pid <> pg_backend_pid() LIMIT 1`).Scan(&pid, &q)
		if err == nil {
			if m := proofRe.FindStringSubmatch(q); m != nil {
				proof = m[1]
			}
		}
	}
	close(stop)
	wg.Wait()
	if proof == "" {
		t.Fatal("never saw tenant B's frame in pg_stat_activity")
	}
	replay := "SELECT set_config('erun.tenant_id', '" + e.B.ID.String() + "', true), set_config('erun.tenant_proof', '" + proof + "', true)"
	// Two clients of tenant A hold both server connections at once, so
	// that one of them sits on the connection the proof was made for.
	attackers := []*pgx.Conn{
		e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol),
		e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol),
	}
	for _, asLogin := range []string{"", "SELECT set_config('role', 'none', true); SELECT set_config('role', 'erun_tenant', true); "} {
		seen := map[bool]bool{} // on the proof's own connection?
		for _, a := range attackers {
			results, err := a.PgConn().Exec(ctx, "BEGIN; SELECT pg_backend_pid()").ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			same := string(results[1].Rows[0][0]) == fmt.Sprint(pid)
			seen[same] = true
			err = execAll(ctx, a, asLogin+replay+"; SELECT count(*) FROM projects")
			if sqlstate(err) != "42501" {
				t.Fatalf("replaying B's proof (same connection: %v): err = %v, want 42501", same, err)
			}
			want := "does not match erun.tenant_id on this server connection"
			if same {
				want = "stale tenant proof"
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("replaying B's proof (same connection: %v): %v, want %q", same, err, want)
			}
		}
		for _, a := range attackers {
			if _, err := a.Exec(ctx, "ROLLBACK"); err != nil {
				t.Fatal(err)
			}
		}
		if !seen[true] || !seen[false] {
			t.Fatalf("tried the proof on its own connection: %v, on the other: %v", seen[true], seen[false])
		}
	}
	// The same over the extended protocol, the proof as a parameter.
	var txs []pgx.Tx
	for _, a := range attackers {
		tx, err := a.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		txs = append(txs, tx)
	}
	seen := map[bool]bool{}
	for _, tx := range txs {
		var own int
		if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()", pgx.QueryExecModeCacheDescribe).Scan(&own); err != nil {
			t.Fatal(err)
		}
		seen[own == pid] = true
		if _, err := tx.Exec(ctx, "SELECT set_config('erun.tenant_id', $1, true), set_config('erun.tenant_proof', $2, true)",
			pgx.QueryExecModeCacheDescribe, e.B.ID.String(), proof); err != nil {
			t.Fatal(err)
		}
		var n int
		err := tx.QueryRow(ctx, "SELECT count(*) FROM projects", pgx.QueryExecModeCacheDescribe).Scan(&n)
		if sqlstate(err) != "42501" {
			t.Fatalf("replaying B's proof over the extended protocol (same connection: %v): %d rows, %v; want 42501", own == pid, n, err)
		}
	}
	for _, tx := range txs {
		tx.Rollback(ctx)
	}
	if !seen[true] || !seen[false] {
		t.Fatalf("extended protocol: tried the proof on its own connection: %v, on the other: %v", seen[true], seen[false])
	}
	for _, a := range attackers {
		probe(t, a, e)
	}
}

// TestStatementsAreNotSharedAcrossTenants: a tenant can DEALLOCATE and
// PREPARE statements by any name through dynamic SQL. If tenant B's
// client reused a server statement that A replaced, B would run A's SQL
// with B's rights. Each tenant's loans start without the statements of
// another tenant's.
func TestStatementsAreNotSharedAcrossTenants(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 1"})
	ctx := context.Background()
	const query = "SELECT count(*) FROM projects"
	victim := e.Connect(e.Token(e.B.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
	count := func() int {
		var n int
		if err := victim.QueryRow(ctx, query).Scan(&n); err != nil {
			t.Fatalf("tenant B: %v", err)
		}
		return n
	}
	if n := count(); n != 2 {
		t.Fatalf("tenant B sees %d projects", n)
	}
	before := digestOf(t, e, e.B.ID.String())
	attacker := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	name := proxyStatementName(query)
	var seen string
	results, err := attacker.PgConn().Exec(ctx, `SELECT set_config('role', 'none', true);
        SELECT coalesce(string_agg(name || ': ' || statement, E'\n'), '') FROM pg_prepared_statements;
        DO $pgt$ BEGIN
            EXECUTE 'DEALLOCATE ALL';
            EXECUTE 'PREPARE `+name+` AS WITH d AS (DELETE FROM projects RETURNING 1) SELECT count(*) FROM d';
        END $pgt$`).ReadAll()
	if err == nil {
		for _, r := range results {
			if r.Err != nil {
				err = r.Err
			}
		}
	}
	if err != nil {
		t.Fatalf("planting a statement: %v", err)
	}
	seen = string(results[1].Rows[0][0])
	if strings.Contains(seen, "projects") {
		t.Fatalf("tenant A reads tenant B's statements in pg_prepared_statements: %s", seen)
	}
	for range 3 {
		if n := count(); n != 2 {
			t.Fatalf("tenant B now sees %d projects", n)
		}
	}
	if after := digestOf(t, e, e.B.ID.String()); after != before {
		t.Fatal("tenant B's rows changed: it ran the statement tenant A planted")
	}
}

// TestNotificationsNeverReachClients: LISTEN is refused, but one run
// through dynamic SQL stays on the server connection after the loan.
// Notifications are not relayed, so the next client never gets any.
func TestNotificationsNeverReachClients(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 1"})
	ctx := context.Background()
	attacker := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	if err := execAll(ctx, attacker, "DO $pgt$ BEGIN EXECUTE 'LISTEN pgtenant_leak'; END $pgt$"); err != nil {
		t.Fatalf("LISTEN through dynamic SQL: %v", err)
	}
	var mu sync.Mutex
	var got []string
	victim := e.ConnectConfig(e.Token(e.B.ID, "tenant", nil), func(cfg *pgx.ConnConfig) {
		cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) {
			mu.Lock()
			got = append(got, n.Channel+": "+n.Payload)
			mu.Unlock()
		}
	})
	// B holds the connection (a pool of one) while the notifications are
	// sent: the server delivers them at the end of B's transaction.
	for i := range 5 {
		if _, err := victim.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Admin.Exec(ctx, fmt.Sprintf("NOTIFY pgtenant_leak, 'secret %d'", i)); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := victim.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n); err != nil || n != 2 {
			t.Fatalf("tenant B: %d, %v", n, err)
		}
		if _, err := victim.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) > 0 {
		t.Fatalf("tenant B received notifications for a channel tenant A listens on: %v", got)
	}
}

// TestLexerSettingsCannotDrift: standard_conforming_strings changes how a
// query string splits into statements. A client can change it with
// set_config; the rest of its loan refuses query strings, and the next
// client gets a connection that splits as pgtenant does.
func TestLexerSettingsCannotDrift(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 1"})
	ctx := context.Background()
	attacker := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	if err := execAll(ctx, attacker, "BEGIN; SELECT set_config('standard_conforming_strings', 'off', false)"); err != nil {
		t.Fatal(err)
	}
	err := execAll(ctx, attacker, `SELECT 'a\''; SELECT count(*) FROM projects`)
	if sqlstate(err) != "0A000" || !strings.Contains(err.Error(), "standard_conforming_strings") {
		t.Fatalf("a query string after the drift: err = %v, want 0A000 naming standard_conforming_strings", err)
	}
	if err := execAll(ctx, attacker, "ROLLBACK; SELECT set_config('standard_conforming_strings', 'off', false)"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*pgx.Conn{e.Connect(e.Token(e.B.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol), attacker} {
		var n int
		if err := c.QueryRow(ctx, `SELECT length('a\\')`).Scan(&n); err != nil || n != 3 {
			t.Fatalf("length('a\\\\') = %d, %v; want 3 (standard_conforming_strings on)", n, err)
		}
	}
}

// TestLoginRoleRepairs: two things PostgreSQL lets every role do to
// itself, which would reach every later connection of the login role: a
// new password (locking pgtenant out) and role-level settings. pgtenant
// undoes both the next time it needs a connection.
func TestLoginRoleRepairs(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 2"})
	ctx := context.Background()
	login := roles.DefaultTenantLogin
	attacker := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	holder := e.Connect(e.Token(e.B.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	victim := e.Connect(e.Token(e.B.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	killIdle := func() {
		t.Helper()
		var pids []int32
		if err := e.Admin.QueryRow(ctx, `SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity
            WHERE usename = $1 AND datname = current_database()
              AND NOT EXISTS (SELECT FROM pg_locks l WHERE l.pid = pg_stat_activity.pid AND l.locktype = 'virtualxid')`, login).Scan(&pids); err != nil {
			t.Fatal(err)
		}
		for _, pid := range pids {
			// With a timeout it waits until the backend is gone, so the
			// pool finds the connection closed.
			if _, err := e.Admin.Exec(ctx, "SELECT pg_terminate_backend($1, 5000)", pid); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, sql := range []string{
		"SELECT set_config('role', 'none', true); ALTER ROLE CURRENT_USER SET statement_timeout = '1ms'",
		"DO $pgt$ BEGIN PERFORM set_config('role', 'none', true); EXECUTE format('ALTER ROLE CURRENT_USER IN DATABASE %I SET search_path = nowhere', current_database()); END $pgt$",
		"SELECT set_config('role', 'none', true); ALTER ROLE CURRENT_USER SET role = 'erun_tenant'",
		// These two would stop every new connection before pgtenant could
		// look at the role: a library that does not load fails the
		// start-up, a transaction timeout kills pgtenant's own set-up.
		"SELECT set_config('role', 'none', true); ALTER ROLE CURRENT_USER SET local_preload_libraries = 'nonexistent'",
		"SELECT set_config('role', 'none', true); ALTER ROLE CURRENT_USER SET transaction_timeout = '1ms'",
		// Left on the session, this would make pgtenant's own repairs run
		// in read-only transactions.
		"SELECT set_config('default_transaction_read_only', 'on', false)",
		"SELECT set_config('role', 'none', true); ALTER ROLE CURRENT_USER PASSWORD 'chosen-by-a-tenant'",
	} {
		if err := execAll(ctx, attacker, sql); err != nil {
			t.Fatalf("%s: %v (PostgreSQL lets a role do this to itself)", sql, err)
		}
	}
	// A connection stays busy while the others are closed: the pool must
	// dial, is refused, and restores the password through the busy one as
	// soon as it is released.
	if _, err := holder.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := holder.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n); err != nil {
		t.Fatal(err)
	}
	killIdle()
	done := make(chan error, 1)
	go func() {
		var n int
		err := victim.QueryRow(ctx, "SELECT count(*) FROM projects, pg_sleep(0.01)").Scan(&n)
		if err == nil && n != 2 {
			err = fmt.Errorf("%d projects", n)
		}
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := holder.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("tenant B after the login role was changed: %v", err)
	}
	// The new connection runs with none of the settings the tenant made.
	var timeout, path, tenant string
	if err := victim.QueryRow(ctx, "SELECT current_setting('statement_timeout'), current_setting('search_path'), erun_current_tenant_id()::text").Scan(&timeout, &path, &tenant); err != nil {
		t.Fatal(err)
	}
	if timeout == "1ms" || strings.Contains(path, "nowhere") || tenant != e.B.ID.String() {
		t.Fatalf("statement_timeout %s, search_path %s, tenant %s", timeout, path, tenant)
	}
	var leftover []string
	if err := e.Admin.QueryRow(ctx, `SELECT coalesce(array_agg(c), '{}') FROM pg_db_role_setting s, unnest(s.setconfig) c
        WHERE s.setrole = $1::regrole AND split_part(c, '=', 1) IN ('statement_timeout', 'search_path', 'role', 'local_preload_libraries', 'transaction_timeout')`, login).Scan(&leftover); err != nil {
		t.Fatal(err)
	}
	if len(leftover) > 0 {
		t.Fatalf("the login role still has the tenant's settings: %v", leftover)
	}
	// The tenant's password no longer opens the login role.
	direct, err := pgx.Connect(ctx, e.Server.DSN(login, "chosen-by-a-tenant", e.DBName))
	if err == nil {
		direct.Close(ctx)
		t.Fatal("the password a tenant chose still logs in as the login role")
	}
	if sqlstate(err) != "28P01" {
		t.Fatalf("logging in with the tenant's password: %v, want 28P01", err)
	}
}

// proxyStatementName is the server-side name pgtenant gives a client's
// statement without parameters.
func proxyStatementName(query string) string { return proxy.ServerStatementName(query, []byte{0, 0}) }

// TestEveryLoanEndsItsProof: whatever a loan was (either protocol, the
// client's own transaction or the proxy's, COPY, an error), the context
// serial moves exactly one step after it, so the proof made for it is
// dead. The test reads the serial in a loan before and after, through a
// pool of one connection.
func TestEveryLoanEndsItsProof(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 1"})
	ctx := context.Background()
	simple := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	extended := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
	serial := func() (int64, uint32) {
		t.Helper()
		var s int64
		var pid uint32
		if err := simple.QueryRow(ctx, "SELECT pg_sequence_last_value('pg_temp.erun_context_serial'::regclass), pg_backend_pid()").Scan(&s, &pid); err != nil {
			t.Fatal(err)
		}
		return s, pid
	}
	copyIn := func(c *pgx.Conn, sql string) error {
		_, err := c.PgConn().CopyFrom(ctx, strings.NewReader("copied\tby a loan\n"), sql)
		return err
	}
	loans := []struct {
		name string
		run  func() error
	}{
		{"simple query", func() error { return execAll(ctx, simple, "SELECT count(*) FROM projects") }},
		{"simple query that fails", func() error {
			if err := execAll(ctx, simple, "SELECT 1/0"); sqlstate(err) != "22012" {
				return fmt.Errorf("want 22012, got %v", err)
			}
			return nil
		}},
		{"the client's transaction, simple", func() error {
			return execAll(ctx, simple, "BEGIN; SELECT count(*) FROM projects; COMMIT")
		}},
		{"the client's transaction over several queries", func() error {
			for _, q := range []string{"BEGIN", "SELECT count(*) FROM projects", "COMMIT"} {
				if err := execAll(ctx, simple, q); err != nil {
					return err
				}
			}
			return nil
		}},
		{"extended", func() error {
			var n int
			return extended.QueryRow(ctx, "SELECT count(*) FROM projects WHERE name <> $1", "x").Scan(&n)
		}},
		{"the client's transaction, extended", func() error {
			tx, err := extended.Begin(ctx)
			if err != nil {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM projects WHERE name <> $1", "x").Scan(&n); err != nil {
				return err
			}
			return tx.Commit(ctx)
		}},
		{"COPY FROM", func() error { return copyIn(simple, "COPY projects (name, description) FROM STDIN") }},
		{"COPY FROM in the client's transaction", func() error {
			if err := execAll(ctx, simple, "BEGIN"); err != nil {
				return err
			}
			if err := copyIn(simple, "COPY projects (name, description) FROM STDIN"); err != nil {
				return err
			}
			return execAll(ctx, simple, "COMMIT")
		}},
		{"COPY FROM that fails", func() error {
			if err := copyIn(simple, "COPY projects (name, nosuchcolumn) FROM STDIN"); sqlstate(err) != "42703" {
				return fmt.Errorf("want 42703, got %v", err)
			}
			return nil
		}},
	}
	// pgx prepares a statement in a round trip (a loan) of its own the
	// first time: prepare it before counting.
	var n int
	if err := extended.QueryRow(ctx, "SELECT count(*) FROM projects WHERE name <> $1", "x").Scan(&n); err != nil {
		t.Fatal(err)
	}
	for i, l := range loans {
		t.Run(l.name, func(t *testing.T) {
			if i > 0 && strings.HasPrefix(l.name, "COPY FROM") {
				// a new name each time: (tenant_id, name) is unique
				execAll(ctx, simple, "DELETE FROM projects WHERE name = 'copied'")
			}
			before, pid := serial()
			if err := l.run(); err != nil {
				t.Fatalf("the loan: %v", err)
			}
			after, pid2 := serial()
			if pid2 != pid {
				t.Fatalf("the connection was replaced (backend %d, then %d)", pid, pid2)
			}
			if after != before+2 {
				t.Fatalf("serial %d before, %d after: want exactly one step for the loan in between", before, after)
			}
			err := execAll(ctx, simple, "SELECT set_config('erun.tenant_proof', '"+e.Key.Proof(e.A.ID, pid, before+1)+"', true); SELECT count(*) FROM projects")
			if sqlstate(err) != "42501" || !strings.Contains(err.Error(), "stale tenant proof") {
				t.Fatalf("the loan's proof afterwards: %v, want 42501 stale tenant proof", err)
			}
		})
	}
}

// TestSessionDefaultsDoNotReachTheNextClient: a client can leave session
// defaults behind with set_config(…, false), even in a transaction that
// fails. The transaction defaults are the subtle ones: the next client's
// BEGIN takes them before its frame runs. Each loan ends with RESET ALL
// outside any transaction.
func TestSessionDefaultsDoNotReachTheNextClient(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 1"})
	ctx := context.Background()
	attacker := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	leave := "SELECT set_config('default_transaction_read_only', 'on', false), set_config('default_transaction_isolation', 'serializable', false), " +
		"set_config('search_path', 'pg_catalog', false), set_config('statement_timeout', '1ms', false)"
	for _, sql := range []string{
		leave,
		"BEGIN; " + leave + "; SELECT 1/0",
		"DO $pgt$ BEGIN PERFORM " + strings.TrimPrefix(leave, "SELECT ") + "; END $pgt$",
	} {
		t.Run(sql[:10], func(t *testing.T) {
			execAll(ctx, attacker, sql)
			if attacker.PgConn().TxStatus() != 'I' {
				execAll(ctx, attacker, "ROLLBACK")
			}
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
				victim := e.Connect(e.Token(e.B.ID, "tenant", nil), mode)
				var readOnly, isolation, path, timeout string
				if err := victim.QueryRow(ctx, `SELECT current_setting('transaction_read_only'), current_setting('transaction_isolation'),
                    current_setting('search_path'), current_setting('statement_timeout') FROM pg_sleep(0.01)`).Scan(&readOnly, &isolation, &path, &timeout); err != nil {
					t.Fatal(err)
				}
				if readOnly != "off" || isolation != "read committed" || path == "pg_catalog" || timeout == "1ms" {
					t.Fatalf("tenant B's transaction: read only %s, isolation %s, search_path %s, statement_timeout %s", readOnly, isolation, path, timeout)
				}
				if _, err := victim.Exec(ctx, "INSERT INTO projects (name) VALUES ('written by B "+mode.String()+" "+sql[:10]+"')"); err != nil {
					t.Fatalf("tenant B's write: %v", err)
				}
			}
		})
	}
}
