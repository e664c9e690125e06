package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtenant/pgtenant/internal/proxytest"
)

func TestExplicitTransactions(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 3"})
	ctx := context.Background()
	c := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)

	t.Run("sees its own writes, ROLLBACK undoes them", func(t *testing.T) {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO projects (name) VALUES ('tx-1'), ('tx-2')"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM projects WHERE name LIKE 'tx-%'").Scan(&n); err != nil || n != 2 {
			t.Fatalf("inside the transaction: %d rows, err %v", n, err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRow(ctx, "SELECT count(*) FROM projects WHERE name LIKE 'tx-%'").Scan(&n); err != nil || n != 0 {
			t.Fatalf("after ROLLBACK: %d rows, err %v", n, err)
		}
	})

	t.Run("an error puts the transaction in the failed state until ROLLBACK", func(t *testing.T) {
		pc := c.PgConn()
		if _, err := pc.Exec(ctx, "BEGIN; INSERT INTO projects (name) VALUES ('doomed')").ReadAll(); err != nil {
			t.Fatal(err)
		}
		if _, err := pc.Exec(ctx, "SELECT 1/0").ReadAll(); sqlstate(err) != "22012" {
			t.Fatalf("division by zero: %v", err)
		}
		if _, err := pc.Exec(ctx, "SELECT 1").ReadAll(); sqlstate(err) != "25P02" || pc.TxStatus() != 'E' {
			t.Fatalf("after the error: err %v, status %c; want 25P02 and E", err, pc.TxStatus())
		}
		if _, err := pc.Exec(ctx, "ROLLBACK").ReadAll(); err != nil || pc.TxStatus() != 'I' {
			t.Fatalf("ROLLBACK: %v, status %c", err, pc.TxStatus())
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM projects WHERE name = 'doomed'").Scan(&n); err != nil || n != 0 {
			t.Fatalf("doomed rows: %d, err %v", n, err)
		}
	})

	t.Run("BEGIN ISOLATION LEVEL SERIALIZABLE is serializable", func(t *testing.T) {
		var level string
		tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.QueryRow(ctx, "SELECT current_setting('transaction_isolation')").Scan(&level); err != nil || level != "serializable" {
			t.Fatalf("isolation %q, err %v", level, err)
		}
		tx.Rollback(ctx)
		// Write skew between two serializable transactions: one must fail.
		other := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
		var errs [2]error
		txs := [2]pgx.Tx{}
		for i, conn := range []*pgx.Conn{c, other} {
			if txs[i], err = conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable}); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := txs[i].QueryRow(ctx, "SELECT count(*) FROM projects WHERE name LIKE 'skew-%'").Scan(&n); err != nil {
				t.Fatal(err)
			}
		}
		for i := range txs {
			if _, err := txs[i].Exec(ctx, fmt.Sprintf("INSERT INTO projects (name) VALUES ('skew-%d')", i)); err != nil {
				errs[i] = err
				continue
			}
			errs[i] = txs[i].Commit(ctx)
		}
		if sqlstate(errs[0]) != "40001" && sqlstate(errs[1]) != "40001" {
			t.Fatalf("write skew committed on both sides (%v, %v); want a serialization failure", errs[0], errs[1])
		}
	})

	t.Run("SET TRANSACTION and savepoints keep their meaning", func(t *testing.T) {
		pc := c.PgConn()
		res, err := pc.Exec(ctx, "BEGIN; SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT current_setting('transaction_isolation'); "+
			"SAVEPOINT s; INSERT INTO projects (name) VALUES ('sp'); ROLLBACK TO SAVEPOINT s; SELECT count(*) FROM projects WHERE name = 'sp'; COMMIT").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(res[2].Rows[0][0]) + "/" + string(res[6].Rows[0][0]); got != "repeatable read/0" {
			t.Fatalf("got %s, want repeatable read/0", got)
		}
	})
}

// TestCommitFailureReachesTheClient: a deferred constraint fails at COMMIT,
// which for a statement outside a transaction is the proxy's own COMMIT.
// The client must see the error, and nothing may be committed.
func TestCommitFailureReachesTheClient(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{})
	ctx := context.Background()
	if _, err := e.Admin.Exec(ctx, `CREATE TABLE deferred_things (
        tenant_id uuid NOT NULL DEFAULT erun_current_tenant_id() REFERENCES tenants (tenant_id),
        x int NOT NULL, CONSTRAINT deferred_things_x_key UNIQUE (tenant_id, x) DEFERRABLE INITIALLY DEFERRED);
    ALTER TABLE deferred_things ENABLE ROW LEVEL SECURITY; ALTER TABLE deferred_things FORCE ROW LEVEL SECURITY;
    CREATE POLICY deferred_things_tenant_policy ON deferred_things TO erun_tenant
        USING (tenant_id = (SELECT erun_current_tenant_id())) WITH CHECK (tenant_id = (SELECT erun_current_tenant_id()));
    GRANT SELECT, INSERT ON deferred_things TO erun_tenant`); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			c := e.Connect(e.Token(e.A.ID, "tenant", nil), mode)
			_, err := c.Exec(ctx, "INSERT INTO deferred_things (x) VALUES ($1), ($1)", 7)
			if sqlstate(err) != "23505" {
				t.Fatalf("implicit transaction: err = %v, want 23505 from COMMIT", err)
			}
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO deferred_things (x) VALUES ($1), ($1)", 8); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(ctx); sqlstate(err) != "23505" {
				t.Fatalf("explicit COMMIT: err = %v, want 23505", err)
			}
			var n int
			if err := c.QueryRow(ctx, "SELECT count(*) FROM deferred_things").Scan(&n); err != nil || n != 0 {
				t.Fatalf("%d rows committed (err %v), want none", n, err)
			}
		})
	}
	// psql's multi-statement string in one Query: the same.
	c := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	if _, err := c.PgConn().Exec(ctx, "INSERT INTO deferred_things (x) VALUES (9); INSERT INTO deferred_things (x) VALUES (9)").ReadAll(); sqlstate(err) != "23505" {
		t.Fatalf("multi-statement: err = %v, want 23505", err)
	}
}

// TestMultiStatementQueriesBehaveAsPostgres runs the same simple-protocol
// strings directly against PostgreSQL and through pgtenant and compares
// what a client observes: results, command tags, errors, notices and the
// final transaction status.
func TestMultiStatementQueriesBehaveAsPostgres(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{})
	ctx := context.Background()
	queries := []string{
		"SELECT 1; SELECT 2",
		"SELECT 1; SELECT 1/0; SELECT 3",
		"VALUES (1), (2); ;; SELECT 'x' AS y",
		"BEGIN; SELECT 1",
		"BEGIN; SELECT 1/0; COMMIT",
		"BEGIN; SELECT 1; COMMIT",
		"SELECT 1; BEGIN; SELECT 2",
		"SELECT 1; COMMIT; SELECT 2",
		"COMMIT",
		"ROLLBACK; SELECT 1",
		"BEGIN; BEGIN; COMMIT",
		"BEGIN; COMMIT AND CHAIN; SELECT current_setting('transaction_isolation'); COMMIT",
		"SELECT syntax error here; SELECT 2",
		"BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT current_setting('transaction_isolation'); ROLLBACK",
		"DO $$ BEGIN RAISE NOTICE 'hello'; END $$; SELECT 1",
		"SELECT 1 -- trailing comment",
		"",
	}
	var notices []string
	observe := func(c *pgconn.PgConn, sql string) string {
		notices = notices[:0]
		res, err := c.Exec(ctx, sql).ReadAll()
		var b strings.Builder
		for _, r := range res {
			fmt.Fprintf(&b, "[%s %v]", r.CommandTag, r.Rows)
		}
		var pgErr *pgconn.PgError
		if err != nil && errorAs(err, &pgErr) {
			fmt.Fprintf(&b, " error %s at %d", pgErr.Code, pgErr.Position)
		} else if err != nil {
			fmt.Fprintf(&b, " error %v", err)
		}
		fmt.Fprintf(&b, " notices %v status %c", notices, c.TxStatus())
		if c.TxStatus() != 'I' {
			c.Exec(ctx, "ROLLBACK").ReadAll()
		}
		return b.String()
	}
	var mu sync.Mutex
	hook := func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		notices = append(notices, n.Severity+": "+n.Message)
		mu.Unlock()
	}
	directCfg, _ := pgconn.ParseConfig(e.AdminDSN)
	directCfg.OnNotice = hook
	direct, err := pgconn.ConnectConfig(ctx, directCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(ctx)
	proxCfg, _ := pgconn.ParseConfig(e.URL(e.Token(e.A.ID, "tenant", nil)))
	proxCfg.OnNotice = hook
	proxied, err := pgconn.ConnectConfig(ctx, proxCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer proxied.Close(ctx)
	for _, q := range queries {
		want, got := observe(direct, q), observe(proxied, q)
		if want != got {
			t.Errorf("%q\n direct:   %s\n pgtenant: %s", q, want, got)
		}
	}
}
