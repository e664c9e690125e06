// Command bench compares pgtenant with PostgreSQL directly and with
// PgBouncer in transaction mode, on the same tenant-scoped workloads, with
// pgbench as the client.
//
// Every target runs the same transaction with the same tenant context:
//   - direct: the application frames it itself, in one round trip:
//     BEGIN; SET LOCAL ROLE …; SET LOCAL erun.tenant_id …; SET LOCAL
//     erun.tenant_proof …; <statement>; COMMIT
//   - pgbouncer: the same string through PgBouncer (pool_mode=transaction);
//   - pgtenant: only <statement>; the proxy adds the frame.
//
// Pool sizes match (20 server connections for PgBouncer and pgtenant).
// Run it with `make bench`; it prints TPS and latency per target and the
// ratios pgtenant/PgBouncer and pgtenant/direct.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/pgtenant/pgtenant/internal/devenv"
	"github.com/pgtenant/pgtenant/internal/pgbouncer"
	"github.com/pgtenant/pgtenant/internal/pgcluster"
)

type result struct {
	target, workload, mode string
	clients                int
	tps, latencyMS         float64
	err                    error
}

func main() {
	seconds := flag.Int("seconds", 10, "duration of each pgbench run")
	clientList := flag.String("clients", "10,100", "client counts to run")
	dir := flag.String("dir", ".pgtenant/bench", "state directory for the benchmark cluster")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *seconds, *clientList, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, seconds int, clientList, dir string) error {
	bin := os.Getenv("PG_BIN")
	if bin == "" {
		return errors.New("PG_BIN is not set (make bench provisions it)")
	}
	pgbench, err := exec.LookPath("pgbench")
	if err != nil {
		return errors.New("pgbench not found: install the PostgreSQL client programs (Debian: postgresql-client)")
	}
	pgPort, err := pgcluster.FreePort()
	if err != nil {
		return err
	}
	env, err := devenv.Start(ctx, zap.NewNop(), devenv.Options{Dir: dir, BinDir: bin, Port: pgPort, Database: "bench", Listen: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer env.Stop()
	tenant := env.Tenants[0]
	project, err := loadData(ctx, env.AdminDSN, tenant.ID.String())
	if err != nil {
		return err
	}
	user, password := env.TenantLogin()
	// What an application talking to PostgreSQL directly (or through
	// PgBouncer) would have to send for the same tenant context: it cannot
	// make a proof per loan itself, so a function of the benchmark's own,
	// with the key, makes one for the connection in each transaction. It
	// costs about what pgtenant's proof costs the server.
	frame := fmt.Sprintf("BEGIN; SET LOCAL ROLE erun_tenant; SELECT bench_context('%s'); ", tenant.ID)
	workloads := map[string]string{
		"read":  "\\set n random(1, 1000)\nSELECT project_id, name FROM projects WHERE name = 'p-' || :n;\n",
		"write": "INSERT INTO tasks (project_id, title) VALUES ('" + project + "', 'bench');\n",
	}
	framed := func(script string) string {
		lines := strings.Split(strings.TrimSpace(script), "\n")
		last := len(lines) - 1
		lines[last] = frame + strings.TrimSuffix(lines[last], ";") + "; COMMIT;"
		return strings.Join(lines, "\n") + "\n"
	}
	work, err := os.MkdirTemp("", "pgtenant-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	type target struct {
		name, addr, user, password string
		framed                     bool
		modes                      []string
	}
	_, pgPortS, _ := net.SplitHostPort(env.Cluster.Addr())
	targets := []target{{"direct", "127.0.0.1:" + pgPortS, user, password, true, []string{"simple"}}}
	bouncer, stopBouncer, err := pgbouncer.Start(pgbouncer.Options{Dir: work, ServerPort: pgPortS, Database: "bench",
		Users: map[string]string{user: password}, PoolSize: 20})
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: PgBouncer is left out: %v\n", err)
	} else {
		defer stopBouncer()
		targets = append(targets, target{"pgbouncer", bouncer, user, password, true, []string{"simple"}})
	}
	jwt := env.Clients.Tenants[0].JWT
	targets = append(targets, target{"pgtenant", env.Proxy.Addr, "bench", jwt, false, []string{"simple", "extended", "prepared"}})

	var results []result
	for _, clients := range strings.Split(clientList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(clients))
		if err != nil {
			return fmt.Errorf("-clients: %w", err)
		}
		for _, wl := range []string{"read", "write"} {
			for _, t := range targets {
				script := workloads[wl]
				if t.framed {
					script = framed(script)
				}
				path := filepath.Join(work, t.name+"-"+wl+".sql")
				if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
					return err
				}
				for _, mode := range t.modes {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					r := result{target: t.name, workload: wl, mode: mode, clients: n}
					host, port, _ := net.SplitHostPort(t.addr)
					r.tps, r.latencyMS, r.err = runPgbench(ctx, pgbench, host, port, t.user, t.password, "bench", path, mode, n, seconds)
					if errors.Is(r.err, errHung) {
						dumpHang(ctx, dir, env.AdminDSN)
					}
					fmt.Fprintf(os.Stderr, "bench: %-9s %-5s %-8s %3d clients: %8.0f tps %7.2f ms %v\n", t.name, wl, mode, n, r.tps, r.latencyMS, errText(r.err))
					results = append(results, r)
				}
			}
		}
	}
	report(results)
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return "error: " + err.Error()
}

// loadData adds 1000 projects per tenant and returns a project of the first
// tenant for the write workload.
func loadData(ctx context.Context, adminDSN, tenant string) (string, error) {
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `INSERT INTO projects (tenant_id, name)
        SELECT t.tenant_id, 'p-' || g FROM tenants t, generate_series(1, 1000) g
        ON CONFLICT (tenant_id, name) DO NOTHING`); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, `ANALYZE projects; ANALYZE tasks`); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, benchContextSQL); err != nil {
		return "", err
	}
	var project string
	err = conn.QueryRow(ctx, `SELECT project_id::text FROM projects WHERE tenant_id = $1 AND name = 'p-1'`, tenant).Scan(&project)
	return project, err
}

// benchContextSQL sets a valid tenant context on a connection pgtenant
// did not open, for the direct and PgBouncer baselines only: it opens the
// connection's context serial on first use and signs the proof for it with
// the installed key, as pgtenant would.
const benchContextSQL = `CREATE OR REPLACE FUNCTION bench_context(t uuid) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s bigint := pg_sequence_last_value(to_regclass('pg_temp.erun_context_serial'));
    k record;
BEGIN
    IF s IS NULL THEN
        s := public.erun_open_context_serial();
    END IF;
    SELECT key_id, secret INTO k FROM erun_private.context_keys WHERE revoked_at IS NULL LIMIT 1;
    PERFORM set_config('erun.tenant_id', t::text, true);
    PERFORM set_config('erun.tenant_proof', k.key_id || ':' || s || ':' ||
        encode(erun_private.hmac(convert_to(t::text || ':' || pg_backend_pid() || ':' || s, 'UTF8'), k.secret, 'sha256'), 'hex'), true);
END $$;
GRANT EXECUTE ON FUNCTION bench_context(uuid) TO erun_tenant`

var (
	tpsRe     = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	latencyRe = regexp.MustCompile(`latency average = ([0-9.]+) ms`)
	failedRe  = regexp.MustCompile(`number of failed transactions: ([0-9]+)`)
)

func runPgbench(ctx context.Context, pgbench, host, port, user, password, db, script, mode string, clients, seconds int) (float64, float64, error) {
	jobs := "2"
	// A run that does not end well after its duration is a hang: report it.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+60)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, pgbench, "-n", "-h", host, "-p", port, "-U", user, "-c", strconv.Itoa(clients), "-j", jobs,
		"-T", strconv.Itoa(seconds), "-M", mode, "-f", script, db)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password, "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if ctx.Err() == context.DeadlineExceeded {
		return 0, 0, fmt.Errorf("%w: %s", errHung, lastLines(out, 6))
	}
	if err != nil {
		return 0, 0, fmt.Errorf("%v: %s", err, lastLines(out, 6))
	}
	tps := tpsRe.FindSubmatch(out)
	lat := latencyRe.FindSubmatch(out)
	if tps == nil || lat == nil {
		return 0, 0, fmt.Errorf("unexpected pgbench output: %s", lastLines(out, 5))
	}
	if f := failedRe.FindSubmatch(out); f != nil && string(f[1]) != "0" {
		return 0, 0, fmt.Errorf("%s failed transactions", f[1])
	}
	t, _ := strconv.ParseFloat(string(tps[1]), 64)
	l, _ := strconv.ParseFloat(string(lat[1]), 64)
	return t, l, nil
}

// errHung: a pgbench run did not end well after its duration.
var errHung = errors.New("pgbench did not finish (killed after its deadline)")

// dumpHang writes what is needed to diagnose a hang next to the benchmark's
// state: every goroutine of this process (the proxy runs in it) and the
// server's view of its connections.
func dumpHang(ctx context.Context, dir, adminDSN string) {
	path := filepath.Join(dir, "hang-"+time.Now().Format("20060102-150405")+".txt")
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	pprof.Lookup("goroutine").WriteTo(f, 2)
	if conn, err := pgx.Connect(ctx, adminDSN); err == nil {
		rows, err := conn.Query(ctx, `SELECT pid, usename, state, wait_event_type, wait_event, left(query, 120) FROM pg_stat_activity WHERE datname = current_database()`)
		if err == nil {
			for rows.Next() {
				vals, _ := rows.Values()
				fmt.Fprintln(f, vals...)
			}
		}
		conn.Close(ctx)
	}
	fmt.Fprintf(os.Stderr, "bench: a pgbench run hung; diagnostics in %s\n", path)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// report prints the results and the ratios.
func report(results []result) {
	find := func(target, wl, mode string, clients int) *result {
		for i := range results {
			r := &results[i]
			if r.target == target && r.workload == wl && r.mode == mode && r.clients == clients && r.err == nil {
				return r
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "workload\tclients\ttarget\tprotocol\tTPS\tlatency ms\tvs PgBouncer\tvs direct\t")
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\tfailed\t\t\t\t\n", r.workload, r.clients, r.target, r.mode)
			continue
		}
		ratio := func(base *result) string {
			if base == nil || r.target != "pgtenant" {
				return ""
			}
			return fmt.Sprintf("%.2fx", r.tps/base.tps)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%.0f\t%.2f\t%s\t%s\t\n", r.workload, r.clients, r.target, r.mode, r.tps, r.latencyMS,
			ratio(find("pgbouncer", r.workload, "simple", r.clients)), ratio(find("direct", r.workload, "simple", r.clients)))
	}
	w.Flush()
}
