package proxy_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtenant/pgtenant/internal/proxytest"
)

// TestPreparedStatementsAcrossTransactions: a client's named statements
// (pgx's default mode prepares every query) keep working over many
// transactions while other clients churn a small pool, so they land on
// different server connections; each connection holds at most
// max_per_server_connection of them (least recently used are closed).
func TestPreparedStatementsAcrossTransactions(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 2",
		TopYAML: "prepared_statements: {max_per_server_connection: 3, max_per_client: 50}"})
	ctx := context.Background()
	c := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		churn := e.Connect(e.Token(e.B.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n int
				if err := churn.QueryRow(ctx, fmt.Sprintf("SELECT count(*) + %d FROM tasks WHERE $1::int > 0", i), 1).Scan(&n); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	pids := map[int]bool{}
	for round := range 12 {
		for k := range 8 {
			var got, pid int
			if err := c.QueryRow(ctx, fmt.Sprintf("SELECT count(*) * %d, pg_backend_pid() FROM projects WHERE $1::int = %d", k+1, k), k).Scan(&got, &pid); err != nil {
				t.Fatalf("round %d statement %d: %v", round, k, err)
			}
			if got != 2*(k+1) {
				t.Fatalf("round %d statement %d: %d", round, k, got)
			}
			pids[pid] = true
		}
	}
	close(stop)
	wg.Wait()
	if len(pids) < 2 {
		t.Fatalf("all executions ran on backend(s) %v; the test needs the pool to move the client", pids)
	}
	var held int
	if _, err := c.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements", pgx.QueryExecModeSimpleProtocol).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if held > 3 {
		t.Fatalf("a server connection holds %d prepared statements, want at most 3", held)
	}
}

func TestTooManyPreparedStatementsPerClient(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{TopYAML: "prepared_statements: {max_per_client: 4}"})
	ctx := context.Background()
	c := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
	var err error
	for k := range 5 {
		var n int
		err = c.QueryRow(ctx, fmt.Sprintf("SELECT %d + $1::int", k), 1).Scan(&n)
		if err != nil {
			if k != 4 {
				t.Fatalf("statement %d: %v", k, err)
			}
			break
		}
	}
	if sqlstate(err) != "53400" {
		t.Fatalf("fifth statement: err = %v, want 53400", err)
	}
	// The client is still usable.
	var n int
	if err := c.QueryRow(ctx, "SELECT 0 + $1::int", 1).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after the limit: %d, %v", n, err)
	}
}

// TestSkippedParseIsNotRemembered: after an error the server skips the rest
// of the pipeline up to Sync, including a Parse. The proxy must not believe
// that statement exists, neither for this client (it may prepare the name
// again) nor on the server connection (another name for the same SQL must
// really be prepared).
func TestSkippedParseIsNotRemembered(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 1"})
	ctx := context.Background()
	c := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
	pc := c.PgConn()

	p := pc.StartPipeline(ctx)
	p.SendQueryParams("SELECT 1/0", nil, nil, nil, nil)
	p.SendPrepare("skipped", "SELECT count(*) FROM projects", nil)
	p.SendPipelineSync()
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	var sawError bool
	for {
		res, err := p.GetResults()
		if err != nil {
			if sqlstate(err) == "22012" {
				sawError = true
				continue
			}
			break
		}
		if _, ok := res.(*pgconn.PipelineSync); ok {
			break
		}
		if rr, ok := res.(*pgconn.ResultReader); ok {
			if _, err := rr.Close(); sqlstate(err) == "22012" {
				sawError = true
			}
		}
	}
	if err := p.Close(); err != nil && sqlstate(err) != "22012" {
		t.Fatal(err)
	}
	if !sawError {
		t.Fatal("the pipeline's first statement did not fail")
	}
	// Another name for the same SQL must be really prepared and run.
	sd, err := pc.Prepare(ctx, "again", "SELECT count(*) FROM projects", nil)
	if err != nil {
		t.Fatalf("prepare the same SQL again: %v", err)
	}
	res := pc.ExecPrepared(ctx, sd.Name, nil, nil, nil).Read()
	if res.Err != nil || string(res.Rows[0][0]) != "2" {
		t.Fatalf("execute it: %v %v", res.Err, res.Rows)
	}
	// The skipped name is free, as it would be on PostgreSQL.
	if _, err := pc.Prepare(ctx, "skipped", "SELECT 1", nil); err != nil {
		t.Fatalf("prepare the skipped name: %v", err)
	}
}
