package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtenant/pgtenant/internal/proxytest"
)

// TestCopyFromUnderRLS: PostgreSQL refuses COPY FROM on a table with
// row-level security; through pgtenant it works, in every format, in and
// out of a transaction, and RLS checks every row: tenant_id defaults to
// the client's tenant and another tenant's id is refused.
func TestCopyFromUnderRLS(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{WatchActivity: true})
	ctx := context.Background()
	c := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
	pc := c.PgConn()
	countA := func(pattern string) int {
		t.Helper()
		var n int
		if err := e.Admin.QueryRow(ctx, "SELECT count(*) FROM projects WHERE tenant_id = $1 AND name LIKE $2", e.A.ID, pattern).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// connFor is the connection to COPY on: in a transaction or not.
	connFor := func(inTx bool) (*pgconn.PgConn, pgx.Tx) {
		t.Helper()
		if !inTx {
			return pc, nil
		}
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tx.Conn().PgConn(), tx
	}

	cases := []struct{ name, sql, data string }{
		{"text", "COPY projects (name, description) FROM STDIN", "text-1\tfirst\ntext-2\t\\N is not null here\n"},
		{"csv", "COPY projects (name, description) FROM STDIN (FORMAT csv, HEADER true)", "name,description\ncsv-1,\"a, quoted\nvalue\"\ncsv-2,plain\n"},
		{"legacy options", "COPY projects (name, description) FROM STDIN WITH DELIMITER AS '|' NULL AS 'nil' CSV", "legacy-1|x\nlegacy-2|y\n"},
	}
	for _, tc := range cases {
		for _, inTx := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/in transaction=%v", tc.name, inTx), func(t *testing.T) {
				if _, err := e.Admin.Exec(ctx, "DELETE FROM projects WHERE name LIKE '%-_'"); err != nil {
					t.Fatal(err)
				}
				pc, tx := connFor(inTx)
				tag, err := pc.CopyFrom(ctx, strings.NewReader(tc.data), tc.sql)
				if err != nil {
					t.Fatal(err)
				}
				if tag.String() != "COPY 2" {
					t.Fatalf("tag %q, want COPY 2", tag)
				}
				if inTx {
					if err := tx.Commit(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if n := countA("%-_"); n != 2 {
					t.Fatalf("tenant A has %d copied rows, want 2", n)
				}
			})
		}
	}

	t.Run("binary", func(t *testing.T) {
		rows := [][]any{{"binary-1", "x"}, {"binary-2", "y"}, {"binary-3", "z"}}
		n, err := c.CopyFrom(ctx, pgx.Identifier{"projects"}, []string{"name", "description"}, pgx.CopyFromRows(rows))
		if err != nil || n != 3 {
			t.Fatalf("CopyFrom: %d, %v", n, err)
		}
		if n := countA("binary-%"); n != 3 {
			t.Fatalf("tenant A has %d binary rows, want 3", n)
		}
	})

	t.Run("all columns", func(t *testing.T) {
		// No column list: COPY reads every column, tenant_id included.
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "0197a7a0-0000-7000-8000-000000000001\t%s\tall-columns\tdesc\t2026-01-01 00:00:00+00\t2026-01-01 00:00:00+00\n", e.A.ID)
		if _, err := pc.CopyFrom(ctx, &buf, "COPY projects FROM STDIN"); err != nil {
			t.Fatal(err)
		}
		if n := countA("all-columns"); n != 1 {
			t.Fatalf("%d rows", n)
		}
	})

	t.Run("large", func(t *testing.T) {
		var buf bytes.Buffer
		for i := range 25000 {
			fmt.Fprintf(&buf, "%s\tlarge-%d\n", e.A.ID, i)
		}
		tag, err := pc.CopyFrom(ctx, &buf, "COPY projects (tenant_id, name) FROM STDIN")
		if err != nil || tag.RowsAffected() != 25000 {
			t.Fatalf("%v, %v", tag, err)
		}
		if n := countA("large-%"); n != 25000 {
			t.Fatalf("%d rows", n)
		}
	})

	// Another tenant's id, and tables a tenant may not write: refused by
	// PostgreSQL, nothing written, in and out of a transaction.
	hostile := []struct{ name, sql, data, code string }{
		{"other tenant's id", "COPY projects (tenant_id, name) FROM STDIN", e.A.ID.String() + "\tmixed-1\n" + e.B.ID.String() + "\tplanted\n", "42501"},
		{"other tenant's id, csv", "COPY projects (tenant_id, name) FROM STDIN (FORMAT csv)", e.B.ID.String() + ",planted\n", "42501"},
		{"tenants table", "COPY tenants (slug, name) FROM STDIN", "evil\tEvil\n", "42501"},
		{"api keys", "COPY api_keys (role) FROM STDIN", "erun_operations\n", "42501"},
		{"missing table", "COPY no_such_table FROM STDIN", "x\n", "42P01"},
		{"missing column", "COPY projects (nope) FROM STDIN", "x\n", "42703"},
		{"extra column", "COPY projects (name) FROM STDIN", "bad-1\textra\n", "22P04"},
		{"missing data", "COPY projects (name, description) FROM STDIN", "bad-1\n", "22P04"},
		{"not null", "COPY projects (name) FROM STDIN", "\\N\n", "23502"},
		{"bad uuid", "COPY projects (tenant_id, name) FROM STDIN", "not-a-uuid\tbad-1\n", "22P02"},
		{"unterminated quote", "COPY projects (name) FROM STDIN (FORMAT csv)", "\"bad-1\n", "22P04"},
		{"FREEZE", "COPY projects (name) FROM STDIN (FREEZE)", "bad-1\n", "0A000"},
		{"WHERE", "COPY projects (name) FROM STDIN WHERE name <> ''", "bad-1\n", "0A000"},
		{"bad option", "COPY projects (name) FROM STDIN (FORMAT xml)", "bad-1\n", "22023"},
		{"a statement riding along", "COPY projects (name) FROM STDIN; DELETE FROM projects", "bad-1\n", "0A000"},
		{"an expression for a column", "COPY projects (name, (SELECT 1)) FROM STDIN", "bad-1\n", "42601"},
		{"private schema", "COPY erun_private.context_keys FROM STDIN", "x\n", "42501"},
	}
	for _, h := range hostile {
		for _, inTx := range []bool{false, true} {
			t.Run(fmt.Sprintf("refused/%s/in transaction=%v", h.name, inTx), func(t *testing.T) {
				pc, tx := connFor(inTx)
				_, err := pc.CopyFrom(ctx, strings.NewReader(h.data), h.sql)
				if sqlstate(err) != h.code {
					t.Fatalf("err = %v, want %s", err, h.code)
				}
				if inTx {
					// The transaction failed, as PostgreSQL's COPY fails it.
					if _, err := tx.Exec(ctx, "SELECT 1"); sqlstate(err) != "25P02" {
						t.Fatalf("after the failed COPY: %v, want 25P02", err)
					}
					tx.Rollback(ctx)
				}
				var n int
				if err := e.Admin.QueryRow(ctx, "SELECT count(*) FROM projects WHERE name IN ('planted', 'mixed-1', 'bad-1')").Scan(&n); err != nil || n != 0 {
					t.Fatalf("%d rows written by a refused COPY (%v)", n, err)
				}
				// The session goes on.
				if err := c.QueryRow(ctx, "SELECT count(*) FROM projects WHERE tenant_id <> $1", e.A.ID).Scan(&n); err != nil || n != 0 {
					t.Fatalf("after the refusal: %d, %v", n, err)
				}
			})
		}
	}

	t.Run("refused/other tenant's id, binary", func(t *testing.T) {
		rows := [][]any{{e.A.ID, "mixed-1"}, {e.B.ID, "planted"}}
		if _, err := c.CopyFrom(ctx, pgx.Identifier{"projects"}, []string{"tenant_id", "name"}, pgx.CopyFromRows(rows)); sqlstate(err) != "42501" {
			t.Fatalf("err = %v, want 42501", err)
		}
		var n int
		if err := e.Admin.QueryRow(ctx, "SELECT count(*) FROM projects WHERE name IN ('planted', 'mixed-1')").Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d rows written (%v)", n, err)
		}
	})

	t.Run("error names the line", func(t *testing.T) {
		_, err := pc.CopyFrom(ctx, strings.NewReader("ok-1\n\\N\n"), "COPY projects (name) FROM STDIN")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || !strings.Contains(pgErr.Where, "COPY projects, line") {
			t.Fatalf("err = %#v", err)
		}
	})

	t.Run("not alone", func(t *testing.T) {
		// Over the extended protocol or inside a multi-statement query,
		// COPY FROM cannot be answered by the proxy: a clear refusal.
		if err := pc.ExecParams(ctx, "COPY projects (name) FROM STDIN", nil, nil, nil, nil).Read().Err; sqlstate(err) != "0A000" {
			t.Fatalf("extended protocol: %v", err)
		}
		if _, err := pc.Exec(ctx, "SELECT 1; COPY projects (name) FROM STDIN").ReadAll(); sqlstate(err) != "0A000" {
			t.Fatalf("multi-statement: %v", err)
		}
	})

	t.Run("server dies", func(t *testing.T) {
		// The server connection is terminated while the client streams:
		// the client gets an error and nothing is written.
		gate := make(chan struct{})
		go func() {
			defer close(gate)
			for range 200 {
				var n int
				e.Admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
					WHERE query LIKE 'INSERT INTO projects (name) OVERRIDING%'`).Scan(&n)
				if n > 0 {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		_, err := pc.CopyFrom(ctx, &gatedReader{data: "dies-1\n", gate: gate}, "COPY projects (name) FROM STDIN")
		if err == nil {
			t.Fatal("COPY succeeded on a terminated server connection")
		}
		if n := countA("dies-%"); n != 0 {
			t.Fatalf("%d rows", n)
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM projects WHERE tenant_id <> $1", e.A.ID).Scan(&n); err != nil || n != 0 {
			t.Fatalf("after the lost connection: %d, %v", n, err)
		}
	})

	t.Run("client aborts", func(t *testing.T) {
		_, err := pc.CopyFrom(ctx, failingReader{data: "aborted-1\n"}, "COPY projects (name) FROM STDIN")
		if sqlstate(err) != "57014" {
			t.Fatalf("err = %v, want 57014", err)
		}
		if n := countA("aborted-%"); n != 0 {
			t.Fatalf("%d rows of an aborted COPY", n)
		}
	})
	assertUntouched(t, e, e.B)
}

// gatedReader yields data, then waits for gate before ending.
type gatedReader struct {
	data string
	gate chan struct{}
}

func (r *gatedReader) Read(p []byte) (int, error) {
	if r.data != "" {
		n := copy(p, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	<-r.gate
	return 0, io.EOF
}

// failingReader yields data, then fails: pgconn sends CopyFail.
type failingReader struct{ data string }

func (r failingReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, fmt.Errorf("the source failed")
	}
	n := copy(p, r.data)
	return n, fmt.Errorf("the source failed")
}
