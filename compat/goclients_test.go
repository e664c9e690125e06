//go:build compat

package compat

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pgtenant/pgtenant/internal/proxytest"
)

// querier is what the scenario needs from pgx and from database/sql.
type querier interface {
	one(ctx context.Context, sql string, args ...any) (any, error)
	exec(ctx context.Context, sql string) (int64, error)
	rows(ctx context.Context, sql string) (int, error)
	begin(ctx context.Context) (rollback func() error, exec func(string) error, err error)
	copyOut(ctx context.Context, sql string) (string, error)
	copyIn(ctx context.Context, names []string) (int64, error)
}

// copyNames copies rows with the given names into projects, the way pgx
// does (binary COPY).
func copyNames(ctx context.Context, c *pgx.Conn, names []string) (int64, error) {
	rows := make([][]any, len(names))
	for i, n := range names {
		rows[i] = []any{n}
	}
	return c.CopyFrom(ctx, pgx.Identifier{"projects"}, []string{"name"}, pgx.CopyFromRows(rows))
}

type pgxQ struct{ c *pgx.Conn }

func (q pgxQ) one(ctx context.Context, s string, args ...any) (any, error) {
	var v any
	return v, q.c.QueryRow(ctx, s, args...).Scan(&v)
}
func (q pgxQ) exec(ctx context.Context, s string) (int64, error) {
	tag, err := q.c.Exec(ctx, s)
	return tag.RowsAffected(), err
}
func (q pgxQ) rows(ctx context.Context, s string) (int, error) {
	rows, err := q.c.Query(ctx, s)
	if err != nil {
		return 0, err
	}
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}
func (q pgxQ) begin(ctx context.Context) (func() error, func(string) error, error) {
	tx, err := q.c.Begin(ctx)
	if err != nil {
		return nil, nil, err
	}
	return func() error { return tx.Rollback(ctx) }, func(s string) error { _, err := tx.Exec(ctx, s); return err }, nil
}
func (q pgxQ) copyOut(ctx context.Context, s string) (string, error) {
	var b bytes.Buffer
	_, err := q.c.PgConn().CopyTo(ctx, &b, s)
	return b.String(), err
}

func (q pgxQ) copyIn(ctx context.Context, names []string) (int64, error) {
	return copyNames(ctx, q.c, names)
}

type sqlQ struct{ db *sql.DB }

func (q sqlQ) one(ctx context.Context, s string, args ...any) (any, error) {
	var v any
	return v, q.db.QueryRowContext(ctx, s, args...).Scan(&v)
}
func (q sqlQ) exec(ctx context.Context, s string) (int64, error) {
	r, err := q.db.ExecContext(ctx, s)
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}
func (q sqlQ) rows(ctx context.Context, s string) (int, error) {
	rows, err := q.db.QueryContext(ctx, s)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}
func (q sqlQ) begin(ctx context.Context) (func() error, func(string) error, error) {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	return tx.Rollback, func(s string) error { _, err := tx.ExecContext(ctx, s); return err }, nil
}
func (q sqlQ) copyOut(ctx context.Context, s string) (string, error) {
	conn, err := q.db.Conn(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	var out string
	err = conn.Raw(func(dc any) error {
		var b bytes.Buffer
		_, err := dc.(*stdlib.Conn).Conn().PgConn().CopyTo(ctx, &b, s)
		out = b.String()
		return err
	})
	return out, err
}

func (q sqlQ) copyIn(ctx context.Context, names []string) (int64, error) {
	conn, err := q.db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var n int64
	err = conn.Raw(func(dc any) error {
		n, err = copyNames(ctx, dc.(*stdlib.Conn).Conn(), names)
		return err
	})
	return n, err
}

func check(ok bool, format string, args ...any) error {
	if !ok {
		return fmt.Errorf(format, args...)
	}
	return nil
}

// goScenario is the scenario of clients/, for Go clients.
func goScenario(e *proxytest.Env, q querier) map[string]string {
	// A bound on the whole scenario: through a pooler that cannot run a
	// step, it must fail rather than hang.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := e.A.ID.String(), e.B.ID.String()
	res := map[string]string{}
	run := func(name string, fn func() error) {
		if err := fn(); err != nil {
			res[name] = "fail: " + err.Error()
			return
		}
		res[name] = "ok"
	}
	run("crud", func() error {
		v, err := q.one(ctx, "INSERT INTO projects (name) VALUES ('compat-go') RETURNING tenant_id::text")
		if err != nil {
			return err
		}
		n, err := q.exec(ctx, "DELETE FROM projects WHERE name = 'compat-go'")
		if err != nil {
			return err
		}
		return check(v == a && n == 1, "tenant %v, deleted %d", v, n)
	})
	run("isolation", func() error {
		v, err := q.one(ctx, "SELECT count(*) FROM projects WHERE tenant_id = $1::uuid", b)
		return errors.Join(err, check(v == int64(0), "saw %v foreign rows", v))
	})
	run("prepared", func() error {
		for i := range 15 {
			v, err := q.one(ctx, "SELECT count(*) FROM projects WHERE length(name) > $1", i%3)
			if err != nil || v != int64(2) {
				return fmt.Errorf("execution %d: %v %v", i, v, err)
			}
		}
		return nil
	})
	run("rollback", func() error {
		rollback, exec, err := q.begin(ctx)
		if err != nil {
			return err
		}
		if err := exec("INSERT INTO projects (name) VALUES ('compat-rolled-back')"); err != nil {
			return err
		}
		if err := rollback(); err != nil {
			return err
		}
		v, err := q.one(ctx, "SELECT count(*) FROM projects WHERE name = 'compat-rolled-back'")
		return errors.Join(err, check(v == int64(0), "%v rows after rollback", v))
	})
	run("recovery", func() error {
		_, err := q.one(ctx, "SELECT 1/0")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "22012" {
			return fmt.Errorf("want 22012, got %v", err)
		}
		v, err := q.one(ctx, "SELECT 1")
		return errors.Join(err, check(fmt.Sprint(v) == "1", "got %v", v))
	})
	run("large", func() error {
		n, err := q.rows(ctx, "SELECT generate_series(1, 100000)")
		return errors.Join(err, check(n == 100000, "%d rows", n))
	})
	run("copy", func() error {
		out, err := q.copyOut(ctx, "COPY (SELECT tenant_id FROM projects) TO STDOUT")
		if err := errors.Join(err, check(strings.Count(out, a) == 2 && !strings.Contains(out, b), "%q", out)); err != nil {
			return err
		}
		n, err := q.copyIn(ctx, []string{"compat-copy-1", "compat-copy-2"})
		if err := errors.Join(err, check(n == 2, "copied %d", n)); err != nil {
			return err
		}
		got, err := q.one(ctx, "SELECT count(*) FROM projects WHERE name LIKE 'compat-copy-%' AND tenant_id = '"+a+"'")
		if err := errors.Join(err, check(fmt.Sprint(got) == "2", "%v rows copied for the tenant", got)); err != nil {
			return err
		}
		_, err = q.exec(ctx, "DELETE FROM projects WHERE name LIKE 'compat-copy-%'")
		return err
	})
	run("cancel", func() error {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := q.one(cctx, "SELECT pg_sleep(10)")
		if err == nil || time.Since(start) > 8*time.Second {
			return fmt.Errorf("not cancelled in time: %v", err)
		}
		_, err = q.one(ctx, "SELECT 1")
		return err
	})
	run("metadata", func() error {
		v, err := q.one(ctx, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'projects'")
		return errors.Join(err, check(v == int64(6), "%v columns", v))
	})
	return res
}

func goClients(t *testing.T, e *proxytest.Env, tg target, matrix map[string]map[string]string) {
	modes := []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol}
	for _, mode := range modes {
		name := "pgx " + mode.String()
		t.Run(name, func(t *testing.T) {
			tg := tg.forClient(t, name)
			cfg, err := pgx.ParseConfig(tg.url)
			if err != nil {
				t.Fatal(err)
			}
			cfg.DefaultQueryExecMode = mode
			proxytest.CancelOnContext(cfg)
			c, err := pgx.ConnectConfig(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			res := goScenario(e, pgxQ{c})
			matrix[name] = res
			report(t, tg, res)
		})
	}
	t.Run("database/sql (pgx/stdlib)", func(t *testing.T) {
		tg := tg.forClient(t, "database/sql (pgx/stdlib)")
		cfg, err := pgx.ParseConfig(tg.url)
		if err != nil {
			t.Fatal(err)
		}
		proxytest.CancelOnContext(cfg)
		db := stdlib.OpenDB(*cfg)
		defer db.Close()
		res := goScenario(e, sqlQ{db})
		matrix["database/sql (pgx/stdlib)"] = res
		report(t, tg, res)
	})
}

// pgbenchClients runs pgbench in each protocol mode: prepared statements,
// tenant-scoped reads and writes, no failed transaction.
func pgbenchClients(t *testing.T, e *proxytest.Env, tg target, matrix map[string]map[string]string) {
	pgbench, err := exec.LookPath("pgbench")
	if err != nil {
		t.Fatal("pgbench not found (make compat installs postgresql-client)")
	}
	script := filepath.Join(t.TempDir(), "tenant.sql")
	os.WriteFile(script, []byte("\\set n random(1, 3)\nSELECT count(*) FROM projects WHERE length(name) > :n;\n"+
		"INSERT INTO tasks (project_id, title) SELECT project_id, 'pgbench' FROM projects LIMIT 1;\n"), 0o644)
	for _, mode := range []string{"simple", "extended", "prepared"} {
		name := "pgbench -M " + mode
		t.Run(name, func(t *testing.T) {
			tg := tg.forClient(t, name)
			cmd := exec.Command(pgbench, "-n", "-h", tg.host, "-p", tg.port, "-U", tg.user, "-c", "4", "-t", "50", "-M", mode, "-f", script, e.DBName)
			cmd.Env = append(os.Environ(), "PGPASSWORD="+tg.password, "PGSSLMODE=disable")
			out, err := cmd.CombinedOutput()
			res := map[string]string{"prepared": "ok", "crud": "ok"}
			if m := regexp.MustCompile(`number of failed transactions: (\d+)`).FindSubmatch(out); err != nil || (m != nil && string(m[1]) != "0") ||
				!bytes.Contains(out, []byte("number of transactions actually processed: 200/200")) {
				res["prepared"], res["crud"] = "fail", "fail"
				if tg.strict {
					t.Errorf("pgbench -M %s: %v\n%s", mode, err, out)
				} else {
					t.Logf("pgbench -M %s: %v\n%s", mode, err, out)
				}
			}
			matrix[name] = res
		})
	}
	// All of pgbench's rows went to tenant A.
	var foreign int
	e.Admin.QueryRow(context.Background(), "SELECT count(*) FROM tasks WHERE title = 'pgbench' AND tenant_id <> $1", e.A.ID).Scan(&foreign)
	if foreign != 0 {
		t.Errorf("%d pgbench rows landed outside tenant A", foreign)
	}
}

// report checks a Go client's results: every step ok.
func report(t *testing.T, tg target, res map[string]string) {
	for _, s := range steps {
		if r := res[s]; !strings.HasPrefix(r, "ok") {
			if tg.strict {
				t.Errorf("step %s: %s", s, r)
			} else {
				t.Logf("step %s: %s", s, r)
			}
		}
	}
}
