package migrate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	amigrate "ariga.io/atlas/sql/migrate"
	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/migrate"
	"github.com/pgtenant/pgtenant/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestMigrateAppliesOnceThenIsANoOp(t *testing.T) {
	ctx := context.Background()
	_, dsn := pgtest.Shared(t).CreateDatabase(t)

	first, err := migrate.Run(ctx, dsn, migrate.Options{})
	if err != nil {
		t.Fatalf("first migrate: %v", err)
	}
	all := embeddedFiles(t)
	if len(first.Applied) != len(all) || first.Current != all[len(all)-1].Version() {
		t.Fatalf("first migrate applied %v (current %s), want all %d files", first.Applied, first.Current, len(all))
	}
	conn := pgtest.Connect(t, dsn)
	var complete int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM atlas_schema_revisions.atlas_schema_revisions
        WHERE applied = total AND total > 0 AND type = 2 AND error IS NULL`).Scan(&complete); err != nil {
		t.Fatal(err)
	}
	if complete != len(all) {
		t.Fatalf("%d fully applied revisions after the first run, want %d", complete, len(all))
	}
	before := revisionRows(t, conn)

	second, err := migrate.Run(ctx, dsn, migrate.Options{})
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if len(second.Applied) != 0 || second.Current != first.Current {
		t.Fatalf("second migrate applied %v (current %s), want nothing", second.Applied, second.Current)
	}
	if after := revisionRows(t, conn); after != before {
		t.Fatalf("second migrate changed the revisions:\nbefore %s\nafter  %s", before, after)
	}
}

func TestConcurrentMigrationsApplyEachFileOnce(t *testing.T) {
	ctx := context.Background()
	_, dsn := pgtest.Shared(t).CreateDatabase(t)
	var wg sync.WaitGroup
	results := make([]migrate.Result, 3)
	errs := make([]error, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = migrate.Run(ctx, dsn, migrate.Options{})
		}()
	}
	wg.Wait()
	applied := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		applied += len(results[i].Applied)
	}
	if want := len(embeddedFiles(t)); applied != want {
		t.Fatalf("three concurrent runs applied %d files in total, want %d", applied, want)
	}
}

func TestMigrateRefusesPostgresOlderThan18(t *testing.T) {
	bin := oldPostgres(t)
	ctx := context.Background()
	old, err := pgtest.Start(ctx, bin)
	if err != nil {
		t.Fatalf("start old PostgreSQL from %s: %v", bin, err)
	}
	t.Cleanup(old.Stop)
	if old.Major >= 18 {
		t.Fatalf("%s is PostgreSQL %d, want an older one", bin, old.Major)
	}

	_, err = migrate.Run(ctx, old.AdminDSN, migrate.Options{})
	var tooOld *migrate.ServerTooOldError
	if !errors.As(err, &tooOld) {
		t.Fatalf("migrate on PostgreSQL %d: err = %v, want ServerTooOldError", old.Major, err)
	}
	if !strings.Contains(err.Error(), "uuidv7()") || !strings.Contains(err.Error(), "PostgreSQL 18") {
		t.Fatalf("error %q should name uuidv7() and PostgreSQL 18", err)
	}
	// Nothing was created before the refusal.
	conn := pgtest.Connect(t, old.AdminDSN)
	var schemas int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_namespace WHERE nspname IN ('atlas_schema_revisions', 'erun_private')`).Scan(&schemas); err != nil {
		t.Fatal(err)
	}
	if schemas != 0 {
		t.Fatalf("refused migrate still created %d schemas", schemas)
	}
}

// oldPostgres finds a PostgreSQL older than 18: PGTENANT_TEST_OLD_PG_BIN
// (set by make test, which installs Debian's if needed) or Debian's layout.
func oldPostgres(t *testing.T) string {
	if bin := os.Getenv("PGTENANT_TEST_OLD_PG_BIN"); bin != "" {
		return bin
	}
	for _, v := range []string{"17", "16", "15", "14", "13"} {
		bin := filepath.Join("/usr/lib/postgresql", v, "bin")
		if _, err := os.Stat(filepath.Join(bin, "postgres")); err == nil {
			return bin
		}
	}
	t.Fatal("no PostgreSQL older than 18 found: run scripts/provision-test-deps.sh or set PGTENANT_TEST_OLD_PG_BIN")
	return ""
}

func TestAtlasSumIsCurrent(t *testing.T) {
	dir, err := amigrate.NewLocalDir(filepath.Join("..", "..", "migrations"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := dir.Checksum()
	if err != nil {
		t.Fatal(err)
	}
	want, err := sum.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", "migrations", amigrate.HashFileName))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("migrations/atlas.sum is stale; run `go run ./cmd/pgtenant migrate hash`\nhave:\n%s\nwant:\n%s", got, want)
	}
}

func TestMigrateVerifiesAtlasSum(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(t *testing.T, d *amigrate.MemDir)
		wantErr string
	}{
		{"missing", func(t *testing.T, d *amigrate.MemDir) {
			copyWithout(t, d, amigrate.HashFileName)
		}, "checksum file not found"},
		{"edited migration", func(t *testing.T, d *amigrate.MemDir) {
			copyWithout(t, d, "")
			f := embeddedFiles(t)[0]
			if err := d.WriteFile(f.Name(), append(f.Bytes(), []byte("\nSELECT 1;\n")...)); err != nil {
				t.Fatal(err)
			}
		}, "checksum mismatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, dsn := pgtest.Shared(t).CreateDatabase(t)
			d := &amigrate.MemDir{}
			c.mutate(t, d)
			_, err := migrate.Run(context.Background(), dsn, migrate.Options{Dir: d})
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
		})
	}
}

func TestFailedMigrationLeavesNoTrace(t *testing.T) {
	ctx := context.Background()
	_, dsn := pgtest.Shared(t).CreateDatabase(t)
	d := &amigrate.MemDir{}
	copyWithout(t, d, amigrate.HashFileName)
	if err := d.WriteFile("29990101000000_broken.sql", []byte(
		"CREATE TABLE half_done (x int);\nINSERT INTO half_done VALUES (1);\nSELECT no_such_function();\n")); err != nil {
		t.Fatal(err)
	}
	sum, err := d.Checksum()
	if err != nil {
		t.Fatal(err)
	}
	if err := amigrate.WriteSumFile(d, sum); err != nil {
		t.Fatal(err)
	}
	res, err := migrate.Run(ctx, dsn, migrate.Options{Dir: d})
	if err == nil || !strings.Contains(err.Error(), "no_such_function") || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("err = %v, want the failing statement's error and 'rolled back'", err)
	}
	if len(res.Applied) != len(embeddedFiles(t)) {
		t.Fatalf("applied %v before the broken file, want the %d good ones", res.Applied, len(embeddedFiles(t)))
	}
	conn := pgtest.Connect(t, dsn)
	var leftover bool
	var revs int
	if err := conn.QueryRow(ctx, `SELECT to_regclass('half_done') IS NOT NULL,
        (SELECT count(*) FROM atlas_schema_revisions.atlas_schema_revisions WHERE version = '29990101000000')`).Scan(&leftover, &revs); err != nil {
		t.Fatal(err)
	}
	if leftover || revs != 0 {
		t.Fatalf("failed migration left table=%v revisions=%d, want neither", leftover, revs)
	}
}

func copyWithout(t *testing.T, d *amigrate.MemDir, skip string) {
	t.Helper()
	src, err := migrate.EmbeddedDir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := src.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := d.WriteFile(f.Name(), f.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	if skip != amigrate.HashFileName {
		sum, err := d.Checksum()
		if err != nil {
			t.Fatal(err)
		}
		if err := amigrate.WriteSumFile(d, sum); err != nil {
			t.Fatal(err)
		}
	}
}

func embeddedFiles(t *testing.T) []amigrate.File {
	t.Helper()
	d, err := migrate.EmbeddedDir()
	if err != nil {
		t.Fatal(err)
	}
	files, err := d.Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no embedded migrations")
	}
	return files
}

func revisionRows(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), `SELECT string_agg(concat_ws('|', version, hash, executed_at, type, applied, total), ';' ORDER BY version)
        FROM atlas_schema_revisions.atlas_schema_revisions`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}
