package pgtest_test

import (
	"context"
	"os"
	"testing"

	"github.com/pgtenant/pgtenant/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestSharedServerIsPostgres18AndDatabasesAreIsolated(t *testing.T) {
	srv := pgtest.Shared(t)
	if srv.Major < 18 {
		t.Fatalf("server major = %d, want >= 18", srv.Major)
	}
	name, dsn := srv.CreateDatabase(t)
	conn := pgtest.Connect(t, dsn)
	var got string
	if err := conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != name {
		t.Fatalf("current_database() = %q, want %q", got, name)
	}
	var u string
	if err := conn.QueryRow(context.Background(), "SELECT uuidv7()::text").Scan(&u); err != nil {
		t.Fatalf("uuidv7() on the test server: %v", err)
	}
	if os.Getenv("PGTENANT_TEST_DSN") == "" {
		var fsync string
		if err := conn.QueryRow(context.Background(), "SHOW fsync").Scan(&fsync); err != nil {
			t.Fatal(err)
		}
		if fsync != "off" {
			t.Fatalf("throwaway cluster runs with fsync=%s, want off", fsync)
		}
	}
}
