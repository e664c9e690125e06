//go:build compat

// Package compat runs real client libraries through pgtenant, each with the
// same scenario (see clients/), while other clients churn the pool so that
// every client's transactions land on different server connections. Run it
// with `make compat`, which installs the clients.
package compat

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/pgtest"
	"github.com/pgtenant/pgtenant/internal/proxytest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var steps = []string{"crud", "isolation", "prepared", "rollback", "recovery", "large", "copy", "cancel", "metadata"}

type client struct {
	name string
	cmd  func(t *testing.T) []string
}

func script(parts ...string) func(*testing.T) []string {
	return func(*testing.T) []string { return parts }
}

func clients() []client {
	return []client{
		{"psql", script("bash", "clients/psql/scenario.sh")},
		{"psycopg 3", script("/usr/bin/python3", "clients/python/psycopg3_client.py")},
		{"psycopg2", script("/usr/bin/python3", "clients/python/psycopg2_client.py")},
		{"asyncpg", script("/usr/bin/python3", "clients/python/asyncpg_client.py")},
		{"node-postgres", script("node", "clients/node/pg_client.mjs")},
		{"postgres.js", script("node", "clients/node/postgresjs_client.mjs")},
		{"JDBC", func(t *testing.T) []string {
			dir := t.TempDir()
			jar := "/usr/share/java/postgresql.jar"
			if out, err := exec.Command("javac", "-cp", jar, "-d", dir, "clients/java/Compat.java").CombinedOutput(); err != nil {
				t.Fatalf("javac: %v\n%s", err, out)
			}
			return []string{"java", "-cp", jar + string(os.PathListSeparator) + dir, "Compat"}
		}},
	}
}

func TestCompat(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 3"})
	stop := churn(t, func() *pgx.Conn { return e.Connect(e.Token(e.B.ID, "tenant", nil), pgx.QueryExecModeCacheStatement) })
	defer stop()

	matrix := map[string]map[string]string{}
	url := e.URL(e.Token(e.A.ID, "tenant", nil))
	runClients(t, e, url, matrix)
	goClients(t, e, url, matrix)
	pgbenchClients(t, e, matrix)
	// Every client's rows were its own: tenant B is untouched.
	var n int
	if err := e.Admin.QueryRow(context.Background(), "SELECT count(*) FROM projects WHERE tenant_id = $1", e.B.ID).Scan(&n); err != nil || n != 2 {
		t.Errorf("tenant B has %d projects (%v), want its 2", n, err)
	}
	printMatrix(t, "through pgtenant", matrix)
}

// churn keeps four other clients busy so that each client's transactions
// land on different server connections.
func churn(t *testing.T, connect func() *pgx.Conn) func() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 4 {
		c := connect()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var n int
				c.QueryRow(ctx, fmt.Sprintf("SELECT count(*) + %d FROM tasks, pg_sleep(0.002)", i)).Scan(&n)
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// runClients runs the client programs against url; every step must pass
// (or be n/a for a library that cannot do it).
func runClients(t *testing.T, e *proxytest.Env, url string, matrix map[string]map[string]string) {
	for _, c := range clients() {
		t.Run(c.name, func(t *testing.T) {
			args := c.cmd(t)
			runCtx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(runCtx, args[0], args[1:]...)
			cmd.Env = append(os.Environ(), "PGT_URL="+url,
				"PGT_TENANT_A="+e.A.ID.String(), "PGT_TENANT_B="+e.B.ID.String())
			out, err := cmd.CombinedOutput()
			results := map[string]string{}
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) >= 2 && (f[0] == "ok" || f[0] == "fail" || f[0] == "n/a") {
					results[strings.TrimSuffix(f[1], ":")] = f[0]
				}
			}
			matrix[c.name] = results
			if err != nil {
				t.Errorf("%s exited with %v:\n%s", c.name, err, out)
			}
			for _, s := range steps {
				if r := results[s]; r != "ok" && r != "n/a" {
					t.Errorf("step %s: %q\n%s", s, r, out)
				}
			}
		})
	}
}

func printMatrix(t *testing.T, title string, m map[string]map[string]string) {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n\n| client | %s |\n|---|%s\n", title, strings.Join(steps, " | "), strings.Repeat("---|", len(steps)))
	for _, n := range names {
		fmt.Fprintf(&b, "| %s |", n)
		for _, s := range steps {
			v, _, _ := strings.Cut(m[n][s], ":")
			if v == "" {
				v = "–"
			}
			fmt.Fprintf(&b, " %s |", v)
		}
		b.WriteString("\n")
	}
	t.Log(b.String())
	if path := os.Getenv("PGTENANT_COMPAT_REPORT"); path != "" {
		f, err := os.OpenFile(filepath.Clean(path), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			f.WriteString(b.String())
			f.Close()
		}
	}
}
