package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/proxytest"
)

// TestSessionSettingsDoNotLeak pins the pool to one server connection, so
// every client below runs on the same backend (checked by its pid), and
// shows that what one client set never reaches the next.
func TestSessionSettingsDoNotLeak(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 1"})
	ctx := context.Background()
	first := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	var pid1 int
	if err := first.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid1); err != nil {
		t.Fatal(err)
	}
	leaks := []string{
		"SET statement_timeout = '4321ms'",
		"SET search_path = pg_catalog",
		"SET TimeZone = 'Asia/Kathmandu'",
		"SELECT set_config('work_mem', '7777kB', false)",
		"DO $$ BEGIN PERFORM set_config('lock_timeout', '1234ms', false); END $$",
		"BEGIN; SET application_name = 'leaky'; COMMIT",
		"SELECT set_config('erun.tenant_id', '" + e.A.ID.String() + "', false)",
	}
	for _, sql := range leaks {
		if _, err := first.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for _, tn := range []struct {
		name string
		id   string
		pw   string
	}{{"same tenant", e.A.ID.String(), e.Token(e.A.ID, "tenant", nil)}, {"other tenant", e.B.ID.String(), e.Token(e.B.ID, "tenant", nil)}} {
		t.Run(tn.name, func(t *testing.T) {
			next := e.Connect(tn.pw, pgx.QueryExecModeCacheStatement)
			var pid int
			var timeout, path, tz, workMem, lockTimeout, app, tenant string
			if err := next.QueryRow(ctx, `SELECT pg_backend_pid(), current_setting('statement_timeout'), current_setting('search_path'),
                current_setting('TimeZone'), current_setting('work_mem'), current_setting('lock_timeout'),
                current_setting('application_name'), public.erun_current_tenant_id()::text`).Scan(
				&pid, &timeout, &path, &tz, &workMem, &lockTimeout, &app, &tenant); err != nil {
				t.Fatal(err)
			}
			if pid != pid1 {
				t.Fatalf("ran on backend %d, want the pinned backend %d", pid, pid1)
			}
			for name, got := range map[string]string{"statement_timeout": timeout, "work_mem": workMem, "lock_timeout": lockTimeout} {
				if got == "4321ms" || got == "7777kB" || got == "1234ms" {
					t.Errorf("%s = %s leaked from another client", name, got)
				}
			}
			if path == "pg_catalog" || tz == "Asia/Kathmandu" || app == "leaky" {
				t.Errorf("leaked: search_path=%s TimeZone=%s application_name=%s", path, tz, app)
			}
			if tenant != tn.id {
				t.Errorf("tenant context %s, want %s", tenant, tn.id)
			}
		})
	}
}

// TestSessionSettingsAreReplayed: a client's session settings (SET, RESET,
// start-up parameters, options) hold in every one of its transactions, on
// whatever server connection it gets, while another client on the same
// connection keeps the defaults.
func TestSessionSettingsAreReplayed(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 1"})
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(e.URL(e.Token(e.A.ID, "tenant", nil)))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["DateStyle"] = "SQL, DMY"
	cfg.RuntimeParams["application_name"] = "replay-test"
	cfg.RuntimeParams["options"] = "-c lock_timeout=2345ms"
	x, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close(ctx)
	y := e.Connect(e.Token(e.B.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)

	for _, sql := range []string{"SET TimeZone = 'Asia/Kathmandu'", "SET statement_timeout TO '4321ms'", "SET SESSION work_mem = '7777kB'"} {
		if _, err := x.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	settingsOf := func(c *pgx.Conn) string {
		var tz, st, wm, ds, app, lt string
		if err := c.QueryRow(ctx, `SELECT current_setting('TimeZone'), current_setting('statement_timeout'), current_setting('work_mem'),
            current_setting('DateStyle'), current_setting('application_name'), current_setting('lock_timeout')`).Scan(&tz, &st, &wm, &ds, &app, &lt); err != nil {
			t.Fatal(err)
		}
		return strings.Join([]string{tz, st, wm, ds, app, lt}, "|")
	}
	const xWant = "Asia/Kathmandu|4321ms|7777kB|SQL, DMY|replay-test|2345ms"
	for i := range 4 {
		if got := settingsOf(x); got != xWant {
			t.Fatalf("round %d: client X has %s, want %s", i, got, xWant)
		}
		if got := settingsOf(y); strings.Contains(got, "Kathmandu") || strings.Contains(got, "4321ms") || strings.Contains(got, "replay-test") {
			t.Fatalf("round %d: client Y has %s", i, got)
		}
	}
	if got := x.PgConn().ParameterStatus("TimeZone"); got != "Asia/Kathmandu" {
		t.Fatalf("client X was told TimeZone=%q", got)
	}
	if got := x.PgConn().ParameterStatus("DateStyle"); got != "SQL, DMY" {
		t.Fatalf("client X was told DateStyle=%q", got)
	}

	// A SET in a transaction that rolls back does not stick; RESET does.
	if _, err := x.PgConn().Exec(ctx, "BEGIN; SET statement_timeout = '999ms'; ROLLBACK").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if _, err := x.PgConn().Exec(ctx, "SET work_mem = '1234kB'; SELECT 1/0").ReadAll(); sqlstate(err) != "22012" {
		t.Fatalf("expected division by zero: %v", err)
	}
	if got := settingsOf(x); got != xWant {
		t.Fatalf("after rolled-back SETs: %s, want %s", got, xWant)
	}
	if _, err := x.Exec(ctx, "RESET statement_timeout"); err != nil {
		t.Fatal(err)
	}
	if got := settingsOf(x); !strings.HasPrefix(got, "Asia/Kathmandu|0|") {
		t.Fatalf("after RESET: %s", got)
	}
	if _, err := x.Exec(ctx, "RESET ALL"); err != nil {
		t.Fatal(err)
	}
	if got := settingsOf(x); strings.Contains(got, "Kathmandu") || strings.Contains(got, "7777kB") {
		t.Fatalf("after RESET ALL: %s", got)
	}
}

// TestTransactionCharacteristicsAreReplayed: a session's default isolation
// level and access mode (SET SESSION CHARACTERISTICS, as JDBC's
// setTransactionIsolation sends it, or SET default_transaction_*) apply to
// each of its transactions, opened by the proxy or by the client, over
// both protocols; a BEGIN that names its own level wins; another client on
// the same server connection keeps the server's defaults.
func TestTransactionCharacteristicsAreReplayed(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 1"})
	ctx := context.Background()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			x := e.Connect(e.Token(e.A.ID, "tenant", nil), mode)
			y := e.Connect(e.Token(e.B.ID, "tenant", nil), mode)
			level := func(c *pgx.Conn, sql string) string {
				t.Helper()
				tx, err := c.Begin(ctx)
				if sql != "" {
					tx.Rollback(ctx)
					_, err = c.Exec(ctx, sql)
				}
				if err != nil {
					t.Fatal(err)
				}
				var iso, ro string
				if err := c.QueryRow(ctx, "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')").Scan(&iso, &ro); err != nil {
					t.Fatal(err)
				}
				if sql == "" {
					if err := tx.Commit(ctx); err != nil {
						t.Fatal(err)
					}
				} else if _, err := c.Exec(ctx, "COMMIT"); err != nil {
					t.Fatal(err)
				}
				return iso + "/" + ro
			}
			implicit := func(c *pgx.Conn) string {
				var iso, ro string
				if err := c.QueryRow(ctx, "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')").Scan(&iso, &ro); err != nil {
					t.Fatal(err)
				}
				return iso + "/" + ro
			}
			if _, err := x.Exec(ctx, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY"); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if got := implicit(x); got != "serializable/on" {
					t.Fatalf("proxy's transaction: %s", got)
				}
				if got := level(x, ""); got != "serializable/on" {
					t.Fatalf("client's BEGIN: %s", got)
				}
				if got := level(x, "BEGIN ISOLATION LEVEL READ COMMITTED"); got != "read committed/on" {
					t.Fatalf("BEGIN ISOLATION LEVEL READ COMMITTED: %s", got)
				}
				if got := implicit(y); got != "read committed/off" {
					t.Fatalf("the other client: %s", got)
				}
			}
			// BEGIN over the extended protocol (Parse, Bind, Execute).
			extended := func(begin string) string {
				t.Helper()
				if err := x.PgConn().ExecParams(ctx, begin, nil, nil, nil, nil).Read().Err; err != nil {
					t.Fatal(err)
				}
				got := implicit(x)
				if _, err := x.Exec(ctx, "COMMIT"); err != nil {
					t.Fatal(err)
				}
				return got
			}
			if got := extended("BEGIN"); got != "serializable/on" {
				t.Fatalf("extended BEGIN: %s", got)
			}
			if got := extended("BEGIN ISOLATION LEVEL REPEATABLE READ"); got != "repeatable read/on" {
				t.Fatalf("extended BEGIN ISOLATION LEVEL REPEATABLE READ: %s", got)
			}
			if got := extended("START TRANSACTION READ WRITE"); got != "serializable/off" {
				t.Fatalf("extended START TRANSACTION READ WRITE: %s", got)
			}
			// Read only means it: PostgreSQL refuses the write.
			if _, err := x.Exec(ctx, "INSERT INTO projects (name) VALUES ('read-only')"); sqlstate(err) != "25006" {
				t.Fatalf("write in a read-only default: %v", err)
			}
			if _, err := x.Exec(ctx, "SET default_transaction_read_only = off"); err != nil {
				t.Fatal(err)
			}
			if _, err := x.Exec(ctx, "SET default_transaction_isolation TO 'repeatable read'"); err != nil {
				t.Fatal(err)
			}
			if got := implicit(x); got != "repeatable read/off" {
				t.Fatalf("after SET default_transaction_*: %s", got)
			}
			if _, err := x.Exec(ctx, "RESET ALL"); err != nil {
				t.Fatal(err)
			}
			if got := implicit(x); got != "read committed/off" {
				t.Fatalf("after RESET ALL: %s", got)
			}
			// SET TRANSACTION as the first statement of a transaction the
			// proxy opens: nothing before it may have taken a snapshot.
			res, err := x.PgConn().Exec(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT current_setting('transaction_isolation')").ReadAll()
			if err != nil || len(res) != 2 || len(res[1].Rows) != 1 || string(res[1].Rows[0][0]) != "repeatable read" {
				t.Fatalf("SET TRANSACTION in an implicit transaction: %v %v", res, err)
			}
		})
	}
}

func TestForbiddenSettingsAreRefused(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{})
	ctx := context.Background()
	c := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	for sql, code := range map[string]string{
		"SET ROLE erun_tenant":              "42501",
		"SET SESSION AUTHORIZATION DEFAULT": "42501",
		"SET erun.tenant_proof = 'x'":       "42501",
		"SET \"erun.tenant_id\" TO 'x'":     "42501",
		"SET client_encoding = 'LATIN1'":    "0A000",
		"SET NAMES 'LATIN1'":                "0A000",
	} {
		_, err := c.Exec(ctx, sql)
		if sqlstate(err) != code || !strings.Contains(err.Error(), "pgtenant") && !strings.Contains(err.Error(), "transaction mode") {
			t.Errorf("%s: err = %v, want %s naming pgtenant", sql, err, code)
		}
	}
	cfg, _ := pgx.ParseConfig(e.URL(e.Token(e.A.ID, "tenant", nil)))
	cfg.RuntimeParams["client_encoding"] = "LATIN1"
	if _, err := pgx.ConnectConfig(ctx, cfg); sqlstate(err) != "0A000" {
		t.Errorf("start-up with client_encoding LATIN1: %v, want 0A000", err)
	}
}

// TestSessionObjectsDoNotOutliveTheTransaction: objects that outlive a
// transaction on the server connection could carry one tenant's rows to
// the next tenant on the same backend. WITH HOLD cursors are closed before
// every transaction; temporary tables cannot be created by tenants.
func TestSessionObjectsDoNotOutliveTheTransaction(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 1"})
	ctx := context.Background()
	a := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	b := e.Connect(e.Token(e.B.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	var pidA, pidB int
	if err := a.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pidA); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PgConn().Exec(ctx, "BEGIN; DECLARE kept CURSOR WITH HOLD FOR SELECT name FROM projects; COMMIT").ReadAll(); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"simple", "extended"} {
		var err error
		if mode == "simple" {
			_, err = b.PgConn().Exec(ctx, "FETCH ALL FROM kept").ReadAll()
		} else {
			_, err = b.Exec(ctx, "FETCH ALL FROM kept", pgx.QueryExecModeExec)
		}
		if sqlstate(err) != "34000" {
			t.Fatalf("%s: tenant B fetching tenant A's WITH HOLD cursor: err = %v, want 34000 (no such cursor)", mode, err)
		}
	}
	if err := b.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pidB); err != nil || pidB != pidA {
		t.Fatalf("B ran on backend %d, A on %d (%v): the test needs one backend", pidB, pidA, err)
	}
	for _, sql := range []string{
		"CREATE TEMP TABLE stash AS SELECT * FROM projects",
		"BEGIN; CREATE TEMP TABLE stash (x int) ON COMMIT DROP; COMMIT",
		"DO $$ BEGIN EXECUTE 'CREATE TEMP TABLE stash (x int)'; END $$",
	} {
		if _, err := a.PgConn().Exec(ctx, sql).ReadAll(); sqlstate(err) != "42501" {
			t.Fatalf("%s: err = %v, want 42501", sql, err)
		}
		if a.PgConn().TxStatus() != 'I' {
			a.PgConn().Exec(ctx, "ROLLBACK").ReadAll()
		}
	}
}

// TestSessionOnlyFeatures: what needs a session of its own gets a clear
// error naming transaction mode, or is answered by the proxy.
func TestSessionOnlyFeatures(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{})
	ctx := context.Background()
	c := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
	for sql, code := range map[string]string{
		"LISTEN jobs":                 "0A000",
		"UNLISTEN *":                  "0A000",
		"PREPARE p AS SELECT 1":       "0A000",
		"EXECUTE p":                   "0A000",
		"SELECT pg_advisory_lock(42)": "0A000",
		"VACUUM projects":             "25001",
		"CREATE INDEX CONCURRENTLY projects_x ON projects (name)": "25001",
		"DISCARD ALL":             "25001",
		"PREPARE TRANSACTION 'x'": "0A000",
	} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			_, err := c.Exec(ctx, sql, mode)
			if sqlstate(err) != code || !strings.Contains(err.Error(), "pgtenant") && !strings.Contains(err.Error(), "transaction mode") {
				t.Errorf("%s (%v): err = %v, want %s naming pgtenant", sql, mode, err, code)
			}
		}
	}
	// Transaction-scoped advisory locks work.
	if _, err := c.Exec(ctx, "SELECT pg_advisory_xact_lock(42)"); err != nil {
		t.Fatal(err)
	}
	// DEALLOCATE is answered for the client's own statements; its other
	// statements, and everyone else's, keep working.
	if _, err := c.Prepare(ctx, "mine", "SELECT count(*) FROM projects"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "DEALLOCATE mine"); err != nil {
		t.Fatalf("DEALLOCATE mine: %v", err)
	}
	if _, err := c.Exec(ctx, "mine"); sqlstate(err) != "26000" {
		t.Fatalf("executing a deallocated statement: %v", err)
	}
	if _, err := c.Exec(ctx, "DEALLOCATE nosuch"); sqlstate(err) != "26000" {
		t.Fatalf("DEALLOCATE nosuch: %v, want 26000", err)
	}
	if err := c.DeallocateAll(ctx); err != nil {
		t.Fatalf("DeallocateAll: %v", err)
	}
	// psycopg 3 sends it over the extended protocol, after a rollback.
	if _, err := c.Prepare(ctx, "again", "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	res := c.PgConn().ExecParams(ctx, "DEALLOCATE ALL", nil, nil, nil, nil).Read()
	if res.Err != nil || res.CommandTag.String() != "DEALLOCATE ALL" {
		t.Fatalf("DEALLOCATE ALL over the extended protocol: %v %q", res.Err, res.CommandTag)
	}
	if _, err := c.PgConn().Prepare(ctx, "again", "SELECT 2", nil); err != nil {
		t.Fatalf("the name is free again after DEALLOCATE ALL: %v", err)
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM projects WHERE $1::int = 1", 1).Scan(&n); err != nil || n != 2 {
		t.Fatalf("after DEALLOCATE ALL: %d, %v", n, err)
	}
}
