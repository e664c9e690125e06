package proxy_test

import (
	"bytes"
	"context"
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

	assertUntouched(t, e, e.B)
}
