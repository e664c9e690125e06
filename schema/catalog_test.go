package schema_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/migrate"
	"github.com/pgtenant/pgtenant/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// declarativeFiles lists the schema's SQL files in the order atlas.hcl gives
// its sources (a directory's files in name order, as Atlas reads them).
func declarativeFiles(t *testing.T) []string {
	t.Helper()
	hcl, err := os.ReadFile(filepath.Join("..", "atlas.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	srcs := regexp.MustCompile(`"file://(schema[^"]*)"`).FindAllStringSubmatch(string(hcl), -1)
	if len(srcs) == 0 {
		t.Fatal("atlas.hcl lists no file:// schema sources")
	}
	var files []string
	seen := map[string]bool{}
	for _, m := range srcs {
		path := filepath.Join("..", m[1])
		st, err := os.Stat(path)
		if err != nil {
			t.Fatalf("atlas.hcl source %s: %v", m[1], err)
		}
		if !st.IsDir() {
			files = append(files, path)
			seen[path] = true
			continue
		}
		inDir, _ := filepath.Glob(filepath.Join(path, "*.sql"))
		sort.Strings(inDir)
		for _, f := range inDir {
			seen[f] = true
		}
		files = append(files, inDir...)
	}
	// Every SQL file under schema/ must be reachable from atlas.hcl.
	filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".sql") && !seen[filepath.Join("..", "schema", p)] {
			t.Errorf("schema/%s is not listed (directly or by directory) in atlas.hcl", p)
		}
		return nil
	})
	return files
}

// applyDeclarative builds the schema from schema/ directly.
func applyDeclarative(t *testing.T, dsn string) {
	t.Helper()
	conn := pgtest.Connect(t, dsn)
	for _, f := range declarativeFiles(t) {
		sql, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.PgConn().Exec(context.Background(), string(sql)).ReadAll(); err != nil {
			t.Fatalf("apply %s: %v", f, err)
		}
	}
}

func migrated(t testing.TB) string {
	t.Helper()
	_, dsn := pgtest.Shared(t).CreateDatabase(t)
	if _, err := migrate.Run(context.Background(), dsn, migrate.Options{}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return dsn
}

// catalogQueries describe everything the blueprint defines, one aspect per
// query, each rendered as sorted text. The migration history schema is not
// part of the blueprint.
var catalogQueries = map[string]string{
	"schemas": `SELECT n.nspname || ' owner=' || pg_get_userbyid(n.nspowner) || ' acl=' || coalesce(n.nspacl::text, '')
        FROM pg_namespace n WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname NOT IN ('information_schema', 'atlas_schema_revisions')`,
	"extensions": `SELECT e.extname || ' in ' || e.extnamespace::regnamespace FROM pg_extension e`,
	"database":   `SELECT coalesce(datacl::text, 'default') FROM pg_database WHERE datname = current_database()`,
	"relations": `SELECT c.oid::regclass || ' kind=' || c.relkind::text || ' rls=' || c.relrowsecurity || ' force=' || c.relforcerowsecurity
            || ' owner=' || pg_get_userbyid(c.relowner) || ' acl=' || coalesce(c.relacl::text, '')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('public', 'erun_private') AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'i')`,
	"columns": `SELECT a.attrelid::regclass || '.' || a.attname || ' #' || a.attnum || ' ' || format_type(a.atttypid, a.atttypmod)
            || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
            || ' acl=' || coalesce(a.attacl::text, '')
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname IN ('public', 'erun_private') AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped`,
	"constraints": `SELECT co.conrelid::regclass || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
        FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
        WHERE n.nspname IN ('public', 'erun_private')`,
	"indexes": `SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'erun_private')`,
	"triggers": `SELECT pg_get_triggerdef(tg.oid) FROM pg_trigger tg WHERE NOT tg.tgisinternal`,
	"policies": `SELECT concat_ws(' | ', schemaname, tablename, policyname, permissive, roles::text, cmd, qual, with_check) FROM pg_policies`,
	"functions": `SELECT p.oid::regprocedure || ' owner=' || pg_get_userbyid(p.proowner) || ' acl=' || coalesce(p.proacl::text, '')
            || E'\n' || pg_get_functiondef(p.oid)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' OR (n.nspname = 'erun_private' AND NOT EXISTS (
            SELECT FROM pg_depend dep WHERE dep.objid = p.oid AND dep.deptype = 'e'))`,
}

func snapshot(t *testing.T, dsn string) map[string]string {
	t.Helper()
	conn := pgtest.Connect(t, dsn)
	out := map[string]string{}
	for name, q := range catalogQueries {
		rows, err := conn.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("catalog query %s: %v", name, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("catalog query %s: %v", name, err)
		}
		sort.Strings(lines)
		out[name] = strings.Join(lines, "\n")
	}
	return out
}

func TestMigrationsProduceTheDeclarativeSchema(t *testing.T) {
	_, declDSN := pgtest.Shared(t).CreateDatabase(t)
	applyDeclarative(t, declDSN)
	migDSN := migrated(t)

	want, got := snapshot(t, declDSN), snapshot(t, migDSN)
	for name := range catalogQueries {
		if want[name] == "" {
			t.Errorf("%s: the declarative schema defines none; the comparison would prove nothing", name)
		}
		if got[name] != want[name] {
			t.Errorf("%s differ between migrations and schema/:\n--- schema/\n%s\n--- migrations/\n%s", name, want[name], got[name])
		}
	}

	// A second migrate changes nothing in the catalog either.
	if _, err := migrate.Run(context.Background(), migDSN, migrate.Options{}); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	again := snapshot(t, migDSN)
	for name := range catalogQueries {
		if again[name] != got[name] {
			t.Errorf("%s changed on the second migrate", name)
		}
	}
}
