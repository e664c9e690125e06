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
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/pgbouncer"
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

// target is where the clients connect.
type target struct {
	title          string
	url            string
	host, port     string
	user, password string
	// strict: every step must pass. Through PgBouncer the results are the
	// comparison, reported but not required.
	strict bool
	// perClient, if set, gives each client a target of its own.
	perClient func(t *testing.T, client string) target
	notes     map[string]string // per client, printed under the matrix
}

// forClient is the target for one client.
func (tg target) forClient(t *testing.T, client string) target {
	if tg.perClient == nil {
		return tg
	}
	c := tg.perClient(t, client)
	c.title, c.strict = tg.title, tg.strict
	return c
}

func TestCompat(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 3"})
	stop := churn(t, func() *pgx.Conn { return e.Connect(e.Token(e.B.ID, "tenant", nil), pgx.QueryExecModeCacheStatement) }, true)
	defer stop()
	host, port := e.HostPort()
	token := e.Token(e.A.ID, "tenant", nil)
	runAll(t, e, target{title: "through pgtenant", url: e.URL(token), host: host, port: port, user: "app", password: token, strict: true})
}

// TestCompatPgBouncer runs the same clients through PgBouncer's transaction
// mode, for comparison. PgBouncer cannot carry a tenant per client, so it
// gets the most a pooler without tenant support can do: a login of its own
// pinned to tenant A (role erun_tenant by role default), with one pool for
// that tenant. It cannot make a proof for each loan either, so in this
// throwaway database, which only PgBouncer uses, erun_current_tenant_id()
// is replaced by one that gives that login tenant A.
func TestCompatPgBouncer(t *testing.T) {
	if _, err := pgbouncer.Binary(); err != nil {
		t.Fatalf("%v (make compat installs it)", err)
	}
	e := proxytest.Start(t, proxytest.Options{})
	ctx := context.Background()
	login, password := "compat_bouncer_"+e.DBName, "compat-bouncer-password"
	for _, sql := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s' IN ROLE erun_tenant", login, password),
		fmt.Sprintf("ALTER ROLE %s IN DATABASE %s SET role = 'erun_tenant'", login, e.DBName),
		fmt.Sprintf(`CREATE OR REPLACE FUNCTION erun_current_tenant_id() RETURNS uuid
            LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
            BEGIN
                IF session_user <> '%s' THEN
                    RAISE EXCEPTION 'only the PgBouncer login has a tenant here' USING ERRCODE = 'insufficient_privilege';
                END IF;
                RETURN '%s'::uuid;
            END $$`, login, e.A.ID),
	} {
		if _, err := e.Admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { e.Admin.Exec(ctx, "DROP ROLE IF EXISTS "+login) })
	notes := map[string]string{}
	// Each client gets a PgBouncer of its own: PgBouncer 1.18 can crash
	// (see the notes under the matrix), and one client's crash must not
	// decide the next client's results.
	perClient := func(t *testing.T, client string) target {
		// Not t.TempDir: PgBouncer runs as another user when we are
		// root, and must reach its directory.
		dir, err := os.MkdirTemp("", "pgtenant-compat-pgbouncer-")
		if err != nil {
			t.Fatal(err)
		}
		addr, stopBouncer, err := pgbouncer.Start(pgbouncer.Options{Dir: dir, ServerPort: strconv.Itoa(e.Server.Port), Database: e.DBName,
			Users: map[string]string{login: password}, PoolSize: 3, IgnoreStartupParameters: "extra_float_digits"})
		if err != nil {
			t.Fatal(err)
		}
		url := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", login, password, addr, e.DBName)
		stopChurn := churn(t, func() *pgx.Conn {
			c, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close(ctx) })
			return c
		}, false)
		t.Cleanup(func() {
			stopChurn()
			stopBouncer()
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			if m := regexp.MustCompile(`FATAL .*`).Find(log); m != nil {
				notes[client] = "PgBouncer crashed: " + string(m)
			}
			os.RemoveAll(dir)
		})
		host, port, _ := net.SplitHostPort(addr)
		return target{url: url, host: host, port: port, user: login, password: password}
	}
	runAll(t, e, target{title: "through PgBouncer " + bouncerVersion() + ", transaction mode", perClient: perClient, notes: notes})
}

// bouncerVersion is the installed PgBouncer's version, for the report.
func bouncerVersion() string {
	bin, _ := pgbouncer.Binary()
	out, _ := exec.Command(bin, "--version").Output()
	if f := strings.Fields(string(out)); len(f) > 1 {
		return f[1]
	}
	return ""
}

// runAll runs every client against tg and prints the matrix.
func runAll(t *testing.T, e *proxytest.Env, tg target) {
	matrix := map[string]map[string]string{}
	runClients(t, e, tg, matrix)
	goClients(t, e, tg, matrix)
	pgbenchClients(t, e, tg, matrix)
	// Every client's rows were its own: tenant B is untouched.
	var n int
	if err := e.Admin.QueryRow(context.Background(), "SELECT count(*) FROM projects WHERE tenant_id = $1", e.B.ID).Scan(&n); err != nil || n != 2 {
		t.Errorf("tenant B has %d projects (%v), want its 2", n, err)
	}
	printMatrix(t, tg.title, matrix, tg.notes)
}

// churn keeps four other clients busy so that each client's transactions
// land on different server connections. They also run, as prepared
// statements, the very text of the scenario's prepared step, so that they
// share server-side statements with the client under test; with wantOwn
// set (another tenant's clients through pgtenant) each must keep seeing
// its own two projects.
func churn(t *testing.T, connect func() *pgx.Conn, wantOwn bool) func() {
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
				err := c.QueryRow(ctx, "SELECT count(*) FROM projects WHERE length(name) > $1", i%3).Scan(&n)
				if wantOwn && ctx.Err() == nil && (err != nil || n != 2) {
					t.Errorf("the other tenant's client saw %d projects (%v), want its own 2", n, err)
					return
				}
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// runClients runs the client programs against url; every step must pass
// (or be n/a for a library that cannot do it).
func runClients(t *testing.T, e *proxytest.Env, tg target, matrix map[string]map[string]string) {
	for _, c := range clients() {
		t.Run(c.name, func(t *testing.T) {
			tg := tg.forClient(t, c.name)
			args := c.cmd(t)
			runCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(runCtx, args[0], args[1:]...)
			cmd.Env = append(os.Environ(), "PGT_URL="+tg.url,
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
			if !tg.strict {
				for _, l := range strings.Split(string(out), "\n") {
					if strings.HasPrefix(l, "fail") {
						t.Log(l)
					}
				}
				return
			}
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

func printMatrix(t *testing.T, title string, m map[string]map[string]string, notes map[string]string) {
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
	b.WriteString("\n")
	for _, n := range names {
		if notes[n] != "" {
			fmt.Fprintf(&b, "note: %s: %s\n", n, notes[n])
		}
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
