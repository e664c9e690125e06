package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/proxytest"
)

// TestCopyFromReadsLikePostgres: pgtenant decodes COPY data itself (PostgreSQL
// refuses COPY FROM under RLS), so each case here is copied twice: by
// PostgreSQL into a table without RLS, and through pgtenant into the same
// table under RLS. Both must store the same rows, or fail with the same
// SQLSTATE; through pgtenant the data also arrives one byte per CopyData
// message, to cross every boundary.
func TestCopyFromReadsLikePostgres(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{})
	ctx := context.Background()
	const columns = `id int, t text, n numeric, b bytea, ts timestamptz, arr int[], j jsonb,
		g int GENERATED ALWAYS AS (id * 2) STORED, seq bigint GENERATED ALWAYS AS IDENTITY`
	for _, sql := range []string{
		"CREATE TABLE copy_probe (" + columns + ", tenant_id uuid NOT NULL DEFAULT erun_current_tenant_id())",
		"ALTER TABLE copy_probe ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE copy_probe FORCE ROW LEVEL SECURITY",
		"CREATE POLICY copy_probe_tenant ON copy_probe TO erun_tenant USING (tenant_id = erun_current_tenant_id()) WITH CHECK (tenant_id = erun_current_tenant_id())",
		"GRANT SELECT, INSERT ON copy_probe TO erun_tenant",
		"CREATE TABLE copy_ref (" + columns + ", tenant_id uuid)",
	} {
		if _, err := e.Admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	tenant := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeCacheStatement).PgConn()
	a := e.A.ID.String()
	var binaryData bytes.Buffer
	if _, err := e.Admin.PgConn().CopyTo(ctx, &binaryData, `COPY (SELECT i, 'row ' || i, i / 7.0, '\x00ff'::bytea, '2026-01-02 03:04:05+00'::timestamptz + i * interval '1 hour',
		ARRAY[i, NULL], jsonb_build_object('i', i) FROM generate_series(1, 50) i) TO STDOUT (FORMAT binary)`); err != nil {
		t.Fatal(err)
	}
	all := "(id, t, n, b, ts, arr, j)"
	cases := []struct{ name, cols, opts, data string }{
		{"text", all, "", "1\tplain\t1.5\t\\\\x00ff\t2026-01-02 03:04:05+00\t{1,2}\t{\"a\": 1}\n2\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n"},
		{"text escapes", "(id, t)", "", "1\ta\\tb\\nc\\\\d\\101\\x41\\x4g\\b\\f\\v\\r\\q\\1777\n2\tlast\n"},
		{"escaped newline", "(id, t)", "", "1\ta\\\nb\n"},
		{"text delimiter and null", "(id, t)", "(DELIMITER ',', NULL 'nil')", "1,nil\n2,\\N\n3,\n"},
		{"crlf", "(id, t)", "", "1\ta\r\n2\tb\r\n"},
		{"mixed line endings", "(id, t)", "", "1\ta\r\n2\tb\n"},
		{"bare cr", "(id, t)", "", "1\ta\r2\tb\r"},
		{"no final newline", "(id, t)", "", "1\ta\n2\tb"},
		{"end marker", "(id, t)", "", "1\ta\n\\.\n2\tafter the end\n"},
		{"marker inside a line", "(id, t)", "", "1\ta\\.b\n"},
		{"empty", "(id, t)", "", ""},
		{"empty line", "(t)", "", "\n\n"},
		{"header", "(id, t)", "(HEADER)", "id\tt\n1\ta\n"},
		{"header match", "(id, t)", "(HEADER match)", "id\tt\n1\ta\n"},
		{"header mismatch", "(id, t)", "(HEADER match)", "id\tx\n1\ta\n"},
		{"header too short", "(id, t)", "(HEADER match, FORMAT csv)", "id\n1,a\n"},
		{"extra data", "(id, t)", "", "1\ta\tb\n"},
		{"missing data", "(id, t)", "", "1\n"},
		{"bad integer", "(id, t)", "", "x\ta\n"},
		{"bad utf8", "(id, t)", "", "1\t\\xff\n"},
		{"literal cr", "(id, t)", "", "1\ta\rb\n"},
		{"unicode", "(id, t)", "", "1\tgrüße 🐘\n"},
		{"csv", "(id, t, j)", "(FORMAT csv)", "1,\"a, \"\"quoted\"\"\nline\",\"{\"\"k\"\": 2}\"\n2,,\n3,\"\",\n"},
		{"csv quote and escape", "(id, t)", "(FORMAT csv, QUOTE '''', ESCAPE '\\')", "1,'it\\'s'\n2,'a\\\\b'\n3,'x\\y'\n"},
		{"csv null", "(id, t)", "(FORMAT csv, NULL 'NA')", "1,NA\n2,\"NA\"\n3,\n"},
		{"csv force not null", "(id, t)", "(FORMAT csv, FORCE_NOT_NULL (t))", "1,\n2,\"\"\n"},
		{"csv force null", "(id, t)", "(FORMAT csv, FORCE_NULL (t))", "1,\n2,\"\"\n3,x\n"},
		{"csv force null all", "(id, t)", "(FORMAT csv, FORCE_NULL *)", "1,\"\"\n"},
		{"csv legacy", "(id, t)", "WITH CSV HEADER DELIMITER AS ';' FORCE NOT NULL t", "id;t\n1;\n2;b\n"},
		{"csv crlf in quotes", "(id, t)", "(FORMAT csv)", "1,\"a\r\nb\"\r\n2,c\r\n"},
		{"csv unterminated", "(id, t)", "(FORMAT csv)", "1,\"open\n"},
		{"csv end marker", "(t)", "(FORMAT csv)", "a\n\\.\nb\n"},
		{"csv header", "(id, t)", "(FORMAT csv, HEADER true)", "whatever,names\n1,a\n"},
		{"all columns", "", "", "1\tt\t1\t\\\\x01\t2026-01-01 00:00:00+00\t{}\t{}\t7\t" + a + "\n"},
		{"all columns, generated given", "", "", "1\tt\t1\t\\\\x01\t2026-01-01 00:00:00+00\t{}\t{}\t2\t7\t" + a + "\n"},
		{"identity given", "(id, seq)", "", "1\t100\n"},
		{"binary", all, "(FORMAT binary)", binaryData.String()},
		{"binary legacy", all, "WITH BINARY", binaryData.String()},
		{"binary truncated", all, "(FORMAT binary)", binaryData.String()[:binaryData.Len()-20]},
		{"binary wrong column count", "(id, t)", "(FORMAT binary)", binaryData.String()},
		{"binary bad signature", "(id)", "(FORMAT binary)", "PGCOPY\n\xff\r\nX\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff"},
		{"binary no trailer", "(id)", "(FORMAT binary)", "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x04\x00\x00\x00\x07"},
	}
	rows := func(table string) string {
		var s string
		if err := e.Admin.QueryRow(ctx, fmt.Sprintf(`SELECT coalesce(string_agg(r, E'\n' ORDER BY r), '')
			FROM (SELECT (to_jsonb(x) - 'tenant_id')::text AS r FROM %s x) q`, table)).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range cases {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/chunked=%v", tc.name, chunked), func(t *testing.T) {
				if _, err := e.Admin.Exec(ctx, "TRUNCATE copy_ref, copy_probe RESTART IDENTITY"); err != nil {
					t.Fatal(err)
				}
				_, refErr := e.Admin.PgConn().CopyFrom(ctx, strings.NewReader(tc.data), fmt.Sprintf("COPY copy_ref %s FROM STDIN %s", tc.cols, tc.opts))
				var src io.Reader = strings.NewReader(tc.data)
				if chunked {
					src = oneByteReader{strings.NewReader(tc.data)}
				}
				_, err := tenant.CopyFrom(ctx, src, fmt.Sprintf("COPY copy_probe %s FROM STDIN %s", tc.cols, tc.opts))
				if sqlstate(err) != sqlstate(refErr) || (err == nil) != (refErr == nil) {
					t.Fatalf("through pgtenant: %v\nPostgreSQL: %v", err, refErr)
				}
				if want, got := rows("copy_ref"), rows("copy_probe"); got != want {
					t.Fatalf("through pgtenant:\n%s\nPostgreSQL:\n%s", got, want)
				}
				if refErr == nil {
					var n int
					if err := e.Admin.QueryRow(ctx, "SELECT count(*) FROM copy_probe WHERE tenant_id <> $1", e.A.ID).Scan(&n); err != nil || n != 0 {
						t.Fatalf("%d rows with another tenant_id (%v)", n, err)
					}
				}
			})
		}
	}
}

// oneByteReader returns one byte per Read: pgconn sends each as its own
// CopyData message.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) { return o.r.Read(p[:1]) }
