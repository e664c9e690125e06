package proxy_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtenant/pgtenant/internal/proxytest"
)

// TestCancelStopsTheRunningStatement: pgx, set to send a CancelRequest when
// a context ends, cancels the statement through the proxy (with the key the
// proxy gave it) and keeps its connection.
func TestCancelStopsTheRunningStatement(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{})
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			c := e.ConnectConfig(e.Token(e.A.ID, "tenant", nil), func(cfg *pgx.ConnConfig) {
				cfg.DefaultQueryExecMode = mode
				proxytest.CancelOnContext(cfg)
			})
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := c.Exec(ctx, "SELECT pg_sleep(30)")
			if took := time.Since(start); took > 8*time.Second {
				t.Fatalf("the cancel took %s", took)
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
				t.Fatalf("err = %v, want 57014 (query canceled by the server)", err)
			}
			// The connection is still good.
			var n int
			if err := c.QueryRow(context.Background(), "SELECT count(*) FROM projects").Scan(&n); err != nil || n != 2 {
				t.Fatalf("after the cancel: %d, %v", n, err)
			}
		})
	}
}

// sendCancel sends a raw CancelRequest to the proxy.
func sendCancel(t *testing.T, addr string, pid, secret uint32) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b [16]byte
	binary.BigEndian.PutUint32(b[0:], 16)
	binary.BigEndian.PutUint32(b[4:], 80877102)
	binary.BigEndian.PutUint32(b[8:], pid)
	binary.BigEndian.PutUint32(b[12:], secret)
	c.Write(b[:])
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.Read(b[:]) // the proxy closes the connection when done
}

// TestCancelNeverHitsAnotherClient: with one server connection, client A's
// cancels, sent after A's transaction ended (the late cancel of a race)
// and even while B's statement runs on the very same backend, never cancel
// B. A cancel sent while A itself runs does cancel A.
func TestCancelNeverHitsAnotherClient(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 1", WatchActivity: true})
	ctx := context.Background()
	a := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	b := e.Connect(e.Token(e.B.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)
	var pidA, pidB int
	if err := a.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pidA); err != nil {
		t.Fatal(err)
	}
	keyA := a.PgConn().PID()
	secretA := binary.BigEndian.Uint32(a.PgConn().SecretKey())

	done := make(chan error, 1)
	go func() {
		_, err := b.Exec(ctx, "SELECT pg_sleep(1.5), pg_backend_pid()")
		done <- err
	}()
	if err := waitForActivity(e, "pg_sleep(1.5)"); err != nil {
		t.Fatal(err)
	}
	// B runs on the same backend A used. Fire A's (stale) cancel repeatedly.
	if err := e.Admin.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(1.5)%' AND pid <> pg_backend_pid()").Scan(&pidB); err != nil {
		t.Fatal(err)
	}
	if pidB != pidA {
		t.Fatalf("B runs on backend %d, A used %d: the test needs them to share it", pidB, pidA)
	}
	for range 5 {
		sendCancel(t, e.Proxy.Addr, keyA, secretA)
		time.Sleep(50 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatalf("B's statement was cancelled by A's cancel: %v", err)
	}

	// A's own cancel, while A runs, works; the backend then serves B cleanly.
	go func() {
		_, err := a.Exec(ctx, "SELECT pg_sleep(20)")
		done <- err
	}()
	if err := waitForActivity(e, "pg_sleep(20)"); err != nil {
		t.Fatal(err)
	}
	sendCancel(t, e.Proxy.Addr, keyA, secretA)
	select {
	case err := <-done:
		if sqlstate(err) != "57014" {
			t.Fatalf("A's cancel: err = %v, want 57014", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("A's own cancel did not stop A")
	}
	if _, err := b.Exec(ctx, "SELECT pg_sleep(0.3)"); err != nil {
		t.Fatalf("B after A's cancel: %v", err)
	}
	// A cancel with a wrong key is dropped.
	sendCancel(t, e.Proxy.Addr, keyA, secretA+1)
}

func waitForActivity(e *proxytest.Env, fragment string) error {
	for range 500 {
		var n int
		e.Admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()", fragment).Scan(&n)
		if n > 0 {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("statement never started: " + fragment)
}
