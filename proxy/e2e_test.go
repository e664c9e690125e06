package proxy_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/pgtest"
	"github.com/pgtenant/pgtenant/internal/proxytest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var execModes = []pgx.QueryExecMode{
	pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec,
	pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol,
}

func TestSmoke(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{})
	ctx := context.Background()
	for _, mode := range execModes {
		t.Run(mode.String(), func(t *testing.T) {
			c := e.Connect(e.Token(e.A.ID, "tenant", nil), mode)
			for range 3 {
				var n int
				var tenant string
				if err := c.QueryRow(ctx, "SELECT count(*), min(tenant_id::text) FROM projects WHERE $1::int > 0", 1).Scan(&n, &tenant); err != nil {
					t.Fatal(err)
				}
				if n != 2 || tenant != e.A.ID.String() {
					t.Fatalf("got %d projects of %s", n, tenant)
				}
			}
		})
	}
	host, port := e.HostPort()
	cmd := exec.Command(proxytest.PSQL(t), "-h", host, "-p", port, "-U", "app", "-d", e.DBName, "-XAtc", "SELECT name FROM projects ORDER BY name")
	cmd.Env = append(cmd.Environ(), "PGPASSWORD="+e.Token(e.B.ID, "tenant", nil), "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	if strings.TrimSpace(string(out)) != "Cafeteria\nDoomsday device" {
		t.Fatalf("psql output %q", out)
	}
}
