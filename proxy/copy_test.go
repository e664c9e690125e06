package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/proxytest"
)

// TestCopyUnderRLS: COPY TO through the proxy, in text, csv and binary,
// returns only the client's tenant's rows.
func TestCopyUnderRLS(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{})
	ctx := context.Background()
	c := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
	pc := c.PgConn()

	for _, format := range []string{"text", "csv", "binary"} {
		t.Run("out/"+format, func(t *testing.T) {
			var buf bytes.Buffer
			tag, err := pc.CopyTo(ctx, &buf, "COPY (SELECT tenant_id, name FROM projects ORDER BY name) TO STDOUT (FORMAT "+format+")")
			if err != nil {
				t.Fatal(err)
			}
			if tag.RowsAffected() != 2 {
				t.Fatalf("COPY TO returned %d rows, want tenant A's 2", tag.RowsAffected())
			}
			if format != "binary" && (strings.Contains(buf.String(), e.B.ID.String()) || !strings.Contains(buf.String(), e.A.ID.String())) {
				t.Fatalf("COPY TO output:\n%s", buf.String())
			}
		})
	}
	t.Run("out/whole table", func(t *testing.T) {
		var buf bytes.Buffer
		if _, err := pc.CopyTo(ctx, &buf, "COPY tasks TO STDOUT"); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(buf.String(), e.B.ID.String()) || strings.Count(buf.String(), "\n") != 3 {
			t.Fatalf("COPY tasks TO STDOUT:\n%s", buf.String())
		}
	})

	// PostgreSQL refuses COPY FROM into a table with row-level security,
	// whoever runs it. Through pgtenant the refusal reaches the client as
	// a clean error, in and out of a transaction, and nothing is written.
	for _, sql := range []string{"COPY projects (name) FROM STDIN", "COPY projects (name) FROM STDIN (FORMAT csv)"} {
		_, err := pc.CopyFrom(ctx, strings.NewReader("copied-1\n"), sql)
		if sqlstate(err) != "0A000" {
			t.Fatalf("%s: err = %v, want PostgreSQL's 0A000", sql, err)
		}
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tx.Conn().PgConn().CopyFrom(ctx, strings.NewReader(fmt.Sprintf("%s\tplanted\n", e.B.ID)), "COPY projects (tenant_id, name) FROM STDIN")
	if sqlstate(err) != "0A000" {
		t.Fatalf("COPY FROM in a transaction: err = %v, want 0A000", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := e.Admin.QueryRow(ctx, "SELECT count(*) FROM projects WHERE name LIKE 'copied%' OR name = 'planted'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows written by refused COPYs (%v)", n, err)
	}
	// The session goes on normally.
	if err := c.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n); err != nil || n != 2 {
		t.Fatalf("after the refusals: %d, %v", n, err)
	}
	assertUntouched(t, e, e.B)
}
