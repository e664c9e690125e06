package proxy_test

import (
	"context"
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
		"SET erun.tenant_id = '" + e.A.ID.String() + "'",
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
