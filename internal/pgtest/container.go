//go:build testcontainers

package pgtest

import (
	"context"
	"fmt"
	"net/url"

	"github.com/testcontainers/testcontainers-go/modules/postgres"
)

// With the build tag testcontainers and PGTENANT_TEST_BACKEND=docker, the
// shared server is postgres:18 in a container: for machines with a Docker
// engine and no local PostgreSQL 18. The default suite needs no Docker.
func init() { startContainer = startPostgresContainer }

func startPostgresContainer(ctx context.Context) (*Server, error) {
	const password = "pgtenant-test"
	c, err := postgres.Run(ctx, "postgres:18",
		postgres.WithDatabase("postgres"),
		postgres.WithUsername("postgres"),
		postgres.WithPassword(password),
		postgres.BasicWaitStrategies(),
	)
	if err != nil {
		return nil, fmt.Errorf("start postgres:18 container: %w", err)
	}
	dsn, err := c.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		c.Terminate(context.Background())
		return nil, err
	}
	srv, err := external(ctx, dsn)
	if err != nil {
		c.Terminate(context.Background())
		return nil, err
	}
	u, _ := url.Parse(dsn)
	srv.Host = u.Hostname()
	srv.terminate = func() { c.Terminate(context.Background()) }
	return srv, nil
}
