package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/proxytest"
)

// BenchmarkRoundTrip: one tenant-scoped query per iteration, through
// pgtenant and, as the baseline, directly to PostgreSQL with the client
// framing the transaction itself in one round trip.
func BenchmarkRoundTrip(b *testing.B) {
	e := proxytest.Start(b, proxytest.Options{})
	ctx := context.Background()
	direct := e.Server.DSN("erun_proxy_tenant", "proxytest-tenant-login", e.DBName)
	b.Run("direct/simple", func(b *testing.B) {
		c, err := pgx.Connect(ctx, direct)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(ctx)
		frame := "BEGIN; SET LOCAL ROLE erun_tenant; SET LOCAL erun.tenant_id = '" + e.A.ID.String() +
			"'; SET LOCAL erun.tenant_proof = '" + openSerial(b, c, e) + "'; SELECT count(*) FROM projects; COMMIT"
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.PgConn().Exec(ctx, frame).ReadAll(); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		b.Run("pgtenant/"+mode.String(), func(b *testing.B) {
			c := e.Connect(e.Token(e.A.ID, "tenant", nil), mode)
			var n int
			b.ReportAllocs()
			for b.Loop() {
				if err := c.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCopyFrom: 10 000 rows per iteration into projects. Through
// pgtenant the COPY becomes INSERTs under RLS; the baselines are what a
// client without pgtenant could do: COPY into the same table with RLS
// disabled (as its owner), and the same multi-row INSERTs sent directly.
func BenchmarkCopyFrom(b *testing.B) {
	e := proxytest.Start(b, proxytest.Options{})
	ctx := context.Background()
	const rows = 10000
	data := func(i int) *strings.Reader {
		var buf strings.Builder
		for r := range rows {
			fmt.Fprintf(&buf, "bench-%d-%d\tsome description\n", i, r)
		}
		return strings.NewReader(buf.String())
	}
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
	}
	b.Run("direct/copy without RLS", func(b *testing.B) {
		if _, err := e.Admin.Exec(ctx, "CREATE TABLE IF NOT EXISTS projects_norls (LIKE projects INCLUDING ALL)"); err != nil {
			b.Fatal(err)
		}
		// The same tenant context, so that the defaults cost the same.
		frame := "SET LOCAL erun.tenant_id = '" + e.A.ID.String() + "'; SET LOCAL erun.tenant_proof = '" + openSerial(b, e.Admin, e) + "'"
		i := 0
		for b.Loop() {
			i++
			tx, err := e.Admin.Begin(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tx.Exec(ctx, frame); err != nil {
				b.Fatal(err)
			}
			if _, err := tx.Conn().PgConn().CopyFrom(ctx, data(i), "COPY projects_norls (name, description) FROM STDIN"); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("pgtenant/copy", func(b *testing.B) {
		c := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
		i := 0
		for b.Loop() {
			i++
			if _, err := c.PgConn().CopyFrom(ctx, data(1000+i), "COPY projects (name, description) FROM STDIN"); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
}

// openSerial opens the context serial on a connection pgtenant did not
// open, as pgtenant does on its own, and returns tenant A's proof for it.
func openSerial(b *testing.B, c *pgx.Conn, e *proxytest.Env) string {
	var serial int64
	if err := c.QueryRow(context.Background(), "SELECT erun_open_context_serial()").Scan(&serial); err != nil {
		b.Fatal(err)
	}
	return e.Key.Proof(e.A.ID, c.PgConn().PID(), serial)
}
