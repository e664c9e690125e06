package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtenant/pgtenant/internal/proxytest"
)

func TestMoreClientsThanServerConnections(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 2"})
	ctx := context.Background()
	const clients, txs = 16, 15
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		tn := e.A
		if i%2 == 1 {
			tn = e.B
		}
		c := e.Connect(e.Token(tn.ID, "tenant", nil), []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol}[i%2])
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range txs {
				var n int
				var tenant string
				if err := c.QueryRow(ctx, "SELECT count(*), min(tenant_id::text) FROM projects, pg_sleep(0.001)").Scan(&n, &tenant); err != nil {
					errs <- err
					return
				}
				if n != 2 || tenant != tn.ID.String() {
					errs <- errors.New("wrong rows: " + tenant)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := e.Proxy.Pools[e.DBName+"/erun_proxy_tenant"].Stat()
	if st.Total > 2 || st.Dialled > 2 {
		t.Fatalf("pool grew past max_size 2: %+v", st)
	}
}

func TestPoolWaitTimeoutIs53300(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 1\nacquire_timeout: 300ms"})
	ctx := context.Background()
	holder := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	waiter := e.Connect(e.Token(e.B.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
	start := time.Now()
	_, err = waiter.Exec(ctx, "SELECT 1")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "53300" {
		t.Fatalf("err = %v, want 53300", err)
	}
	if !strings.Contains(pgErr.Message, e.DBName+"/erun_proxy_tenant") {
		t.Fatalf("message %q does not name the pool", pgErr.Message)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("gave up after %s, before acquire_timeout", waited)
	}
	// The waiter's connection is still usable once the holder is done.
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := waiter.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n); err != nil || n != 2 {
		t.Fatalf("after the pool freed up: %d rows, err %v", n, err)
	}
}

func TestServerKilledMidTransaction(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 2", WatchActivity: true})
	ctx := context.Background()

	t.Run("inside the client's transaction: the client is told and disconnected", func(t *testing.T) {
		c := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO projects (name) VALUES ('lost')"); err != nil {
			t.Fatal(err)
		}
		var pid int
		if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		terminate(t, e, pid)
		err = tx.Commit(ctx)
		if err == nil {
			t.Fatal("COMMIT after the server connection died reported success")
		}
		var n int
		if err := e.Admin.QueryRow(ctx, "SELECT count(*) FROM projects WHERE name = 'lost'").Scan(&n); err != nil || n != 0 {
			t.Fatalf("the lost transaction's row is there (%d, %v)", n, err)
		}
	})

	t.Run("a statement outside a transaction: the client gets an error and goes on", func(t *testing.T) {
		c := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
		var pid int
		if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := c.Exec(ctx, "SELECT pg_sleep(30)")
			done <- err
		}()
		waitActive(t, e, pid)
		terminate(t, e, pid)
		select {
		case err := <-done:
			if sqlstate(err) != "57P01" {
				t.Fatalf("err = %v, want 57P01 (terminated)", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the client was left hanging")
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n); err != nil || n < 2 {
			t.Fatalf("the same client afterwards: %d rows, err %v", n, err)
		}
	})

	// The pool recovered: every client works, on live connections.
	for range 4 {
		c := e.Connect(e.Token(e.B.ID, "tenant", nil), pgx.QueryExecModeCacheStatement)
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n); err != nil || n != 2 {
			t.Fatalf("after the kills: %d rows, err %v", n, err)
		}
	}
	if st := e.Proxy.Pools[e.DBName+"/erun_proxy_tenant"].Stat(); st.Destroyed < 2 {
		t.Fatalf("pool destroyed %d connections, want the 2 killed ones gone: %+v", st.Destroyed, st)
	}
}

func terminate(t *testing.T, e *proxytest.Env, pid int) {
	t.Helper()
	var ok bool
	if err := e.Admin.QueryRow(context.Background(), "SELECT pg_terminate_backend($1, 5000)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
}

// waitActive waits until backend pid is running a statement.
func waitActive(t *testing.T, e *proxytest.Env, pid int) {
	t.Helper()
	for range 200 {
		var state string
		e.Admin.QueryRow(context.Background(), "SELECT coalesce(state, '') FROM pg_stat_activity WHERE pid = $1", pid).Scan(&state)
		if state == "active" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("backend %d never became active", pid)
}

// TestIdleServerTerminated: a pooled connection whose backend was killed
// while idle is never lent; the next client does not see its FATAL.
func TestIdleServerTerminated(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 1"})
	ctx := context.Background()
	c := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	var pid int
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	terminate(t, e, pid)
	var pid2, n int
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid(), count(*) FROM projects").Scan(&pid2, &n); err != nil {
		t.Fatalf("first query after the idle backend died: %v", err)
	}
	if pid2 == pid || n != 2 {
		t.Fatalf("ran on backend %d (killed: %d), %d rows", pid2, pid, n)
	}
}

// TestFirstQueriesOnFreshConnections: many clients whose first query runs
// on a newly dialled server connection. pgconn may still be reading the
// socket in the background when the proxy takes it over; without syncing
// it first, a response went missing and the client waited forever.
func TestFirstQueriesOnFreshConnections(t *testing.T) {
	for round := range 3 {
		e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 50"})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		token := e.Token(e.A.ID, "tenant", nil)
		var wg sync.WaitGroup
		errs := make(chan error, 50)
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := pgx.Connect(ctx, e.URL(token))
				if err != nil {
					errs <- err
					return
				}
				defer c.Close(context.Background())
				var n int
				if _, err := c.PgConn().Exec(ctx, "SELECT count(*) FROM projects").ReadAll(); err != nil {
					errs <- err
				}
				if err := c.QueryRow(ctx, "SELECT count(*) FROM projects").Scan(&n); err != nil || n != 2 {
					errs <- fmt.Errorf("%d rows, %v", n, err)
				}
			}()
		}
		wg.Wait()
		cancel()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}
