package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtenant/pgtenant/internal/proxytest"
)

func sqlstate(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// TestHostileSQLCannotReachAnotherTenant: a tenant's client sends SQL meant
// to escape its tenant. Each case either fails with the SQLSTATE given or
// runs and returns only zeros (its SELECTs count tenant B's rows); and in
// the client's next transaction it still sees exactly its own rows, as
// erun_tenant. None of this relies on the proxy inspecting SQL.
func TestHostileSQLCannotReachAnotherTenant(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 2"})
	ctx := context.Background()
	B := e.B.ID.String()
	proofA := e.Key.Proof(e.A.ID, 1, 1) // a proof of A's, made for another connection
	countB := "SELECT count(*) FROM projects WHERE tenant_id = '" + B + "'"
	cases := []struct {
		name    string
		sql     string
		wantErr string // SQLSTATE, or "" when it runs and every value it returns is 0
		// splitOK: sent one statement per transaction (extended mode), the
		// read runs in a fresh, correctly framed transaction and succeeds,
		// returning no row of B.
		splitOK bool
	}{
		{"SET ROLE erun_operations", "SET ROLE erun_operations", "42501", false},
		{"SET LOCAL ROLE erun_operations in a block", "BEGIN; SET LOCAL ROLE erun_operations", "42501", false},
		{"set_config role", "SELECT set_config('role', 'erun_operations', false)", "42501", false},
		{"RESET ROLE then read", "RESET ROLE; " + countB, "42501", true},
		{"SET SESSION AUTHORIZATION", "SET SESSION AUTHORIZATION postgres", "42501", false},
		{"set_config tenant, session", "SELECT set_config('erun.tenant_id', '" + B + "', false); " + countB, "42501", true},
		{"set_config tenant, local", "SELECT set_config('erun.tenant_id', '" + B + "', true); " + countB, "42501", true},
		{"SET tenant outside a transaction", "SET erun.tenant_id = '" + B + "'", "42501", false},
		{"SET tenant inside a transaction", "BEGIN; SET erun.tenant_id = '" + B + "'; COMMIT", "42501", false},
		{"own proof on B's id", "BEGIN; SET LOCAL erun.tenant_id = '" + B + "'; SET LOCAL erun.tenant_proof = '" + proofA + "'; " + countB, "42501", false},
		{"DISCARD ALL", "DISCARD ALL", "25001", false},
		{"DO block switching tenant", "DO $$ BEGIN PERFORM set_config('erun.tenant_id', '" + B + "', true); " +
			"IF (SELECT count(*) FROM projects) > 0 THEN RAISE EXCEPTION 'saw rows'; END IF; END $$", "42501", false},
		{"DO block switching role", "DO $$ BEGIN SET ROLE erun_operations; END $$", "42501", false},
		{"DO block resetting role", "DO $$ BEGIN RESET ROLE; PERFORM count(*) FROM projects; END $$", "42501", false},
		{"COMMIT then read", "COMMIT; " + countB, "", false},
		{"COMMIT then read B by tenant default", "COMMIT; SELECT count(*) FROM projects WHERE tenant_id <> (SELECT erun_current_tenant_id())", "", false},
		{"COMMIT AND CHAIN then read", "BEGIN; COMMIT AND CHAIN; " + countB + "; COMMIT", "", false},
		{"ROLLBACK then RESET ROLE", "ROLLBACK; RESET ROLE; SELECT count(*) FROM tasks WHERE tenant_id = '" + B + "'", "42501", true},
		{"write B's rows", "WITH u AS (UPDATE projects SET name = 'x' WHERE tenant_id = '" + B + "' RETURNING 1) SELECT count(*) FROM u", "", false},
		{"insert for B", "INSERT INTO projects (tenant_id, name) VALUES ('" + B + "', 'planted')", "42501", false},
		{"read the context keys", "SELECT count(*) FROM erun_private.context_keys", "42501", false},
		{"look up an API key", "SELECT count(*) FROM erun_lookup_api_key('x')", "42501", false},
		{"read tenants", "SELECT count(*) FROM tenants", "42501", false},
	}
	for _, mode := range []string{"simple", "extended"} {
		for _, c := range cases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				conn := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
				var err error
				var values []string
				if mode == "simple" {
					var results []*pgconn.Result
					results, err = conn.PgConn().Exec(ctx, c.sql).ReadAll()
					for _, r := range results {
						for _, row := range r.Rows {
							for _, v := range row {
								values = append(values, string(v))
							}
						}
						if err == nil && r.Err != nil {
							err = r.Err
						}
					}
				} else {
					// One statement at a time over the extended protocol;
					// stop at the first error, as the simple protocol does.
					for _, stmt := range strings.Split(c.sql, "; ") {
						if strings.HasPrefix(stmt, "DO ") {
							stmt = c.sql // keep DO bodies whole
						}
						var rows pgx.Rows
						rows, err = conn.Query(ctx, stmt)
						if err == nil {
							for rows.Next() {
								vals, _ := rows.Values()
								for _, v := range vals {
									values = append(values, fmt.Sprint(v))
								}
							}
							rows.Close()
							err = rows.Err()
						}
						if err != nil || strings.HasPrefix(stmt, "DO ") {
							break
						}
					}
					if conn.PgConn().TxStatus() != 'I' {
						conn.Exec(ctx, "ROLLBACK")
					}
				}
				want := c.wantErr
				if mode == "extended" && c.splitOK {
					want = ""
				}
				if got := sqlstate(err); got != want {
					t.Fatalf("err = %v (SQLSTATE %q), want SQLSTATE %q", err, got, want)
				}
				// Counts must be 0; other values (set_config echoes its
				// argument) carry no data.
				for _, v := range values {
					if n, err := strconv.Atoi(v); err == nil && n != 0 {
						t.Fatalf("returned %q; every count should be 0", values)
					}
				}
				probe(t, conn, e)
			})
		}
	}
	assertUntouched(t, e, e.B)
}

// probe: in a new transaction the client sees exactly its own projects, as
// erun_tenant, with its own tenant context.
func probe(t *testing.T, conn *pgx.Conn, e *proxytest.Env) {
	t.Helper()
	ctx := context.Background()
	if conn.PgConn().TxStatus() != 'I' {
		if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
			t.Fatalf("rollback before probe: %v", err)
		}
	}
	var own, foreign int
	var user, tenant string
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE tenant_id = $1), count(*) FILTER (WHERE tenant_id <> $1),
        current_user, erun_current_tenant_id()::text FROM projects`, e.A.ID).Scan(&own, &foreign, &user, &tenant); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if own < 2 || foreign != 0 || user != "erun_tenant" || tenant != e.A.ID.String() {
		t.Fatalf("probe: own=%d foreign=%d user=%s tenant=%s", own, foreign, user, tenant)
	}
}

func errorAs(err error, target **pgconn.PgError) bool { return errors.As(err, target) }
