package proxy_test

import (
	"context"
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
	proof := e.Key.Proof(e.A.ID)
	direct := e.Server.DSN("erun_proxy_tenant", "proxytest-tenant-login", e.DBName)
	frame := "BEGIN; SET LOCAL ROLE erun_tenant; SET LOCAL erun.tenant_id = '" + e.A.ID.String() +
		"'; SET LOCAL erun.tenant_proof = '" + proof + "'; SELECT count(*) FROM projects; COMMIT"
	b.Run("direct/simple", func(b *testing.B) {
		c, err := pgx.Connect(ctx, direct)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(ctx)
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
