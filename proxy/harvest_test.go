package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/pgtest"
	"github.com/pgtenant/pgtenant/internal/proxytest"
)

// proofShape is what erun_current_tenant_id() accepts as a proof.
var proofShape = regexp.MustCompile(`[A-Za-z0-9_.-]{1,64}:[0-9]{1,19}:[0-9a-f]{64}`)

// harvestTenant is one tenant of TestNothingToHarvestUnderChurn with the
// strings only its own clients ever send or store: its project names, its
// query text and its application_name. Each ends in a '-' so that no marker
// is a prefix of another's.
type harvestTenant struct {
	id                         uuid.UUID
	slug                       string
	names                      string // its project names, sorted, comma-joined
	count                      int
	secretMark, queryMark, app string
}

func (h harvestTenant) marks() []string { return []string{h.secretMark, h.queryMark, h.app} }

// failures collects a concurrent test's failures: the first few are
// reported in full, all are counted.
type failures struct {
	t *testing.T
	n atomic.Int64
}

func (f *failures) add(format string, args ...any) {
	if f.n.Add(1) <= 25 {
		f.t.Errorf(format, args...)
	}
}

// TestNothingToHarvestUnderChurn (DESIGN §1.3): while twenty tenants run
// transactions over four pooled server connections, tenant A, acting as
// the login role in every round, reads pg_prepared_statements, pg_cursors
// and its tenant context, and in a statement of its own pg_stat_activity
// (as the login role, or as erun_tenant), which must be refused every time
// (42501: setup-roles revokes pg_stat_get_activity, which would show every
// other tenant's application_name). It must never see another tenant's
// query text, application_name, rows or any tenant proof but its own
// current one; and any proof it did find must be worthless (42501 for
// every tenant id), as are its own proofs of earlier loans.
func TestNothingToHarvestUnderChurn(t *testing.T) {
	const churnFor = 30 * time.Second
	e := proxytest.Start(t, proxytest.Options{PoolYAML: "max_size: 4"})
	ctx := context.Background()

	ids := []uuid.UUID{e.A.ID, e.B.ID}
	slugs := []string{e.A.Slug, e.B.Slug}
	for i := range 18 {
		slug := fmt.Sprintf("harvest-%02d", i)
		var id uuid.UUID
		if err := e.Admin.QueryRow(ctx, `INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING tenant_id`, slug).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids, slugs = append(ids, id), append(slugs, slug)
	}
	tenants := make([]harvestTenant, len(ids))
	for i, id := range ids {
		h := harvestTenant{id: id, slug: slugs[i], secretMark: "secret-" + slugs[i] + "-",
			queryMark: "query-" + slugs[i] + "-", app: "app-" + slugs[i] + "-"}
		for j := 1; j <= 2; j++ {
			if _, err := e.Admin.Exec(ctx, `INSERT INTO projects (tenant_id, name, description) VALUES ($1, $2, $3)`,
				id, fmt.Sprintf("%s%d", h.secretMark, j), h.secretMark+"description"); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.Admin.QueryRow(ctx, `SELECT count(*), string_agg(name, ',' ORDER BY name) FROM projects WHERE tenant_id = $1`,
			id).Scan(&h.count, &h.names); err != nil {
			t.Fatal(err)
		}
		tenants[i] = h
	}
	digestB := tenantDigest(t, e, e.B.ID)

	// One client per tenant, prepared statements and simple protocol
	// alternately (A's client prepares, so that the attacker does find
	// statements in pg_prepared_statements: its own tenant's), each with
	// its marker as application_name (which the proxy replays into every
	// transaction of the client).
	conns := make([]*pgx.Conn, len(tenants))
	for i, h := range tenants {
		mode := pgx.QueryExecModeCacheStatement
		if i%2 == 1 {
			mode = pgx.QueryExecModeSimpleProtocol
		}
		conns[i] = e.ConnectConfig(e.Token(h.id, "tenant", nil), func(cfg *pgx.ConnConfig) {
			cfg.DefaultQueryExecMode = mode
			cfg.RuntimeParams["application_name"] = h.app
		})
	}
	attacker := e.Connect(e.Token(e.A.ID, "tenant", nil), pgx.QueryExecModeSimpleProtocol)

	fail := &failures{t: t}
	deadline := time.Now().Add(churnFor)
	iterations := make([]int, len(tenants))
	var wrongCounts atomic.Int64
	var wg sync.WaitGroup
	for i := range tenants {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h, conn := tenants[i], conns[i]
			read := fmt.Sprintf(`SELECT count(*), coalesce(string_agg(name, ',' ORDER BY name), '') FROM projects WHERE name <> '%s'`, h.queryMark)
			inTx := fmt.Sprintf(`SELECT erun_current_tenant_id()::text, current_user::text, pg_sleep(0.002)::text, '%stx'`, h.queryMark)
			check := func(q pgx.Row) error {
				var n int
				var names string
				if err := q.Scan(&n, &names); err != nil {
					return err
				}
				if n != h.count || names != h.names {
					wrongCounts.Add(1)
					fail.add("tenant %s saw %d projects (%s), want %d (%s)", h.slug, n, names, h.count, h.names)
				}
				return nil
			}
			for n := 0; n < 1_000_000 && time.Now().Before(deadline); n++ {
				qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				var err error
				if n%4 == 3 {
					err = pgx.BeginFunc(qctx, conn, func(tx pgx.Tx) error {
						if err := check(tx.QueryRow(qctx, read)); err != nil {
							return err
						}
						var tenant, user, sleep, mark string
						if err := tx.QueryRow(qctx, inTx).Scan(&tenant, &user, &sleep, &mark); err != nil {
							return err
						}
						if tenant != h.id.String() || user != "erun_tenant" {
							fail.add("tenant %s: in its transaction tenant=%s user=%s", h.slug, tenant, user)
						}
						return check(tx.QueryRow(qctx, read))
					})
				} else {
					err = check(conn.QueryRow(qctx, read))
				}
				cancel()
				if err != nil {
					fail.add("tenant %s, iteration %d: %v", h.slug, n, err)
					if conn.IsClosed() {
						return
					}
				}
				iterations[i]++
			}
		}(i)
	}

	// The attacker: tenant A, every round as the login role, by one of the
	// spellings PostgreSQL always allows.
	spellings := []string{
		"SELECT set_config('role', 'none', true)",
		"RESET ROLE",
		"DO $$ BEGIN PERFORM set_config('role', 'none', true); END $$",
	}
	const look = `;
SELECT current_user::text, pg_backend_pid()::text, coalesce(current_setting('erun.tenant_proof', true), '');
SELECT name, statement FROM pg_prepared_statements;
SELECT name, statement FROM pg_cursors`
	// pg_stat_activity (with the other backends' application_names, which
	// the proxy sets in each transaction of their clients) is a statement of
	// its own, as the login role and, every fourth round, as erun_tenant:
	// setup-roles revoked pg_stat_get_activity, so it fails with 42501 and
	// would otherwise abort the rest of the round.
	const activity = `SELECT pid::text, coalesce(usename::text, ''), coalesce(application_name, ''), coalesce(state, ''), coalesce(query, ''), coalesce(backend_type, '')
    FROM pg_stat_activity WHERE pid <> pg_backend_pid()`
	activitySpellings := append(slices.Clone(spellings), "")
	var (
		polls       int
		actReads    int                 // pg_stat_activity reads attempted
		harvested   = map[string]bool{} // proof-shaped strings other than the round's own proof
		ownProofs   []string            // the attacker's own proofs, one per round
		refused     = map[string]int{}  // pg_stat_activity reads refused with 42501, by role
		states      = map[string]int{}  // pg_stat_activity rows of login-role backends seen, by state
		queriesSeen = map[string]int{}  // non-empty query texts of other backends seen
		appsSeen    = map[string]int{}  // application_names of other backends seen
		prepared    int                 // statements seen in pg_prepared_statements
		ownPrepared int                 // of those, statements of A's churn client
		foreignHits = map[string]int{}  // another tenant's marker seen, by marker
	)
	for polls = 0; polls < 1_000_000 && time.Now().Before(deadline); polls++ {
		spelling := spellings[polls%len(spellings)]
		qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		results, err := attacker.PgConn().Exec(qctx, spelling+look).ReadAll()
		cancel()
		if err == nil && len(results) != 4 {
			err = fmt.Errorf("%d results, want 4", len(results))
		}
		if err != nil {
			fail.add("attacker round %d: %v", polls, err)
			if attacker.IsClosed() {
				break
			}
			continue
		}
		me := results[1].Rows
		if len(me) != 1 || len(me[0]) != 3 {
			fail.add("attacker round %d: own row %q", polls, me)
			continue
		}
		user, pidText, own := string(me[0][0]), string(me[0][1]), string(me[0][2])
		if user != "erun_proxy_tenant" {
			fail.add("attacker round %d (%s): current_user %q, want the login role", polls, spelling, user)
		}
		// Its own proof must be A's, for this backend: anything else is
		// another tenant's context.
		pid, _ := strconv.ParseUint(pidText, 10, 32)
		if parts := strings.Split(own, ":"); len(parts) != 3 {
			fail.add("attacker round %d: own proof %q", polls, own)
		} else if serial, err := strconv.ParseInt(parts[1], 10, 64); err != nil || own != e.Key.Proof(e.A.ID, uint32(pid), serial) {
			fail.add("attacker round %d: the proof in its own transaction is not A's for backend %d: %q", polls, pid, own)
		} else {
			ownProofs = append(ownProofs, own)
		}
		prepared += len(results[2].Rows)
		for _, row := range results[2].Rows {
			if strings.Contains(string(row[1]), tenants[0].queryMark) {
				ownPrepared++
			}
		}
		seen := results[2:]

		// pg_stat_activity, refused every time.
		actSpelling, as := activitySpellings[polls%len(activitySpellings)], "login role"
		q := activity
		if actSpelling == "" {
			as = "erun_tenant"
		} else {
			q = actSpelling + ";\n" + activity
		}
		qctx, cancel = context.WithTimeout(ctx, 20*time.Second)
		actResults, err := attacker.PgConn().Exec(qctx, q).ReadAll()
		cancel()
		actReads++
		switch code := sqlstate(err); {
		case code == "42501" && strings.Contains(err.Error(), "pg_stat_get_activity"):
			refused[as]++
		case err == nil && len(actResults) > 0:
			rows := actResults[len(actResults)-1].Rows
			fail.add("attacker round %d read pg_stat_activity as %s (%d rows), want 42501", polls, as, len(rows))
			for _, row := range rows {
				usename, app, state, query := string(row[1]), string(row[2]), string(row[3]), string(row[4])
				if usename == "erun_proxy_tenant" || usename == "erun_proxy_operations" {
					states[state]++
				}
				if query != "" {
					queriesSeen[usename+": "+query]++
				}
				if app != "" {
					appsSeen[app]++
				}
			}
			seen = append(seen, actResults[len(actResults)-1])
		default:
			fail.add("attacker round %d reading pg_stat_activity as %s: err = %v (SQLSTATE %q), want 42501 on pg_stat_get_activity", polls, as, err, code)
		}
		if attacker.IsClosed() {
			fail.add("attacker round %d: the connection closed", polls)
			break
		}

		var hay strings.Builder
		for _, r := range seen {
			for _, row := range r.Rows {
				for _, v := range row {
					hay.Write(v)
					hay.WriteByte('\n')
				}
			}
		}
		text := hay.String()
		for _, p := range proofShape.FindAllString(text, -1) {
			if p != own {
				if !harvested[p] {
					fail.add("attacker round %d harvested a proof %q", polls, p)
				}
				harvested[p] = true
			}
		}
		for _, h := range tenants[1:] {
			for _, m := range h.marks() {
				if strings.Contains(text, m) {
					if foreignHits[m] == 0 {
						what := ""
						if m == h.app {
							what = " (its application_name, which the proxy sets in each of its transactions; pg_stat_activity shows it whatever track_activities is)"
						}
						fail.add("attacker round %d saw tenant %s's marker %q%s in:\n%s", polls, h.slug, m, what, excerpt(text, m))
					}
					foreignHits[m]++
				}
			}
		}
	}
	wg.Wait()

	// Replay: every harvested proof (there should be none; at most 50 of
	// them), and A's own proofs of its last few loans, on every tenant id.
	replay := make([]string, 0, len(harvested)+3)
	for p := range harvested {
		replay = append(replay, p)
	}
	sort.Strings(replay)
	replay = replay[:min(len(replay), 50)]
	for i := len(ownProofs) - 1; i >= 0 && i >= len(ownProofs)-3; i-- {
		replay = append(replay, ownProofs[i])
	}
	replays := 0
	for _, p := range replay {
		for _, h := range tenants {
			q := fmt.Sprintf(`SELECT set_config('erun.tenant_id', '%s', true), set_config('erun.tenant_proof', '%s', true);
SELECT count(*) FROM projects`, h.id, p)
			_, err := attacker.PgConn().Exec(ctx, q).ReadAll()
			if got := sqlstate(err); got != "42501" {
				fail.add("replaying %q as tenant %s: err = %v (SQLSTATE %q), want 42501", p, h.slug, err, got)
			}
			replays++
		}
	}

	total := 0
	for i, n := range iterations {
		total += n
		if n <= 50 {
			fail.add("churn client of %s ran only %d iterations", tenants[i].slug, n)
		}
	}
	if ownPrepared == 0 {
		fail.add("the attacker never saw its own tenant's prepared statements: is pg_prepared_statements being read at all?")
	}
	if polls <= 100 {
		fail.add("the attacker polled only %d times", polls)
	}
	if n := refused["login role"] + refused["erun_tenant"]; n != actReads || refused["login role"] == 0 || refused["erun_tenant"] == 0 {
		fail.add("pg_stat_activity refused %d of %d reads (%v), want all of them, as the login role and as erun_tenant", n, actReads, refused)
	}
	if n := wrongCounts.Load(); n != 0 {
		fail.add("%d churn reads saw another tenant's rows or missed their own", n)
	}
	if got := tenantDigest(t, e, e.B.ID); got != digestB {
		fail.add("tenant B's rows changed: digest %s, was %s", got, digestB)
	}
	sort.Ints(iterations)
	t.Logf("attacker: %d polls, %d own proofs (distinct from each other: %v), %d prepared statements seen (%d of A's churn client), %d proofs harvested, %d replays refused",
		polls, len(ownProofs), distinct(ownProofs), prepared, ownPrepared, len(harvested), replays)
	t.Logf("churn: %d iterations in all, per client min %d, median %d, max %d", total, iterations[0], iterations[len(iterations)/2], iterations[len(iterations)-1])
	t.Logf("pg_stat_activity: %d reads, refused with 42501 %v; login-role backends seen by state: %v; application_names seen: %v; non-empty query texts seen (%d distinct): %v",
		actReads, refused, states, appsSeen, len(queriesSeen), limitMap(queriesSeen, 10))
	if fail.n.Load() > 0 {
		t.Logf("%d failures in all; foreign markers seen: %v", fail.n.Load(), foreignHits)
	}
}

// tenantDigest is an md5 over a tenant's projects and tasks, read as admin.
func tenantDigest(t *testing.T, e *proxytest.Env, tenant uuid.UUID) string {
	t.Helper()
	var d string
	if err := e.Admin.QueryRow(context.Background(), `SELECT md5(
        coalesce((SELECT string_agg(concat_ws('|', project_id, name, description, created_at, updated_at), E'\n' ORDER BY project_id)
            FROM projects WHERE tenant_id = $1), '') || E'\n--\n' ||
        coalesce((SELECT string_agg(concat_ws('|', task_id, project_id, title, done, assignee_id, updated_at), E'\n' ORDER BY task_id)
            FROM tasks WHERE tenant_id = $1), ''))`, tenant).Scan(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

func excerpt(text, m string) string {
	i := strings.Index(text, m)
	lo, hi := max(0, i-200), min(len(text), i+len(m)+200)
	return text[lo:hi]
}

func distinct(s []string) bool {
	seen := map[string]bool{}
	for _, v := range s {
		if seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}

func limitMap(m map[string]int, n int) map[string]int {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]int{}
	for _, k := range keys[:min(n, len(keys))] {
		out[k] = m[k]
	}
	return out
}

// TestServerLogHoldsNoFrames (DESIGN §1.3): on a server that logs every
// statement, every duration and the statement of every error, nothing a
// tenant runs through pgtenant, succeeding or failing, reaches the log:
// neither its query text nor the frame with its proof. The admin's own
// statement does, so the log is really being written.
func TestServerLogHoldsNoFrames(t *testing.T) {
	ctx := context.Background()
	bin, err := pgtest.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pgtest.StartWith(ctx, bin, map[string]string{
		"log_statement": "all", "log_min_error_statement": "error", "log_min_duration_statement": "0",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A cleanup, not a defer: it must run after proxytest's own cleanups
	// (stopping the proxy, dropping the database), which need the server.
	t.Cleanup(srv.Stop)
	e := proxytest.Start(t, proxytest.Options{Server: srv})
	// A name each tenant already has, for a unique violation.
	taken := map[uuid.UUID]string{}
	for _, id := range []uuid.UUID{e.A.ID, e.B.ID} {
		var name string
		if err := e.Admin.QueryRow(ctx, `SELECT min(name) FROM projects WHERE tenant_id = $1`, id).Scan(&name); err != nil {
			t.Fatal(err)
		}
		taken[id] = name
	}
	logPath := srv.LogFile()
	// The migrations and setup-roles ran as the admin, whose statements
	// are logged (the function bodies mention tenant_proof): look only at
	// what was written after set-up.
	st, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	from := st.Size()

	var marks, gapMarks []string
	bogus := e.Key.ID + ":1:" + strings.Repeat("0", 64)
	for _, tn := range []struct {
		id   uuid.UUID
		slug string
	}{{e.A.ID, e.A.Slug}, {e.B.ID, e.B.Slug}} {
		existing := taken[tn.id]
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
			conn := e.Connect(e.Token(tn.id, "tenant", nil), mode)
			mark := func(what string) string {
				m := fmt.Sprintf("logmark-%s-%s-%s-", tn.slug, mode, what)
				marks = append(marks, m)
				return m
			}
			var n int
			if err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM projects WHERE name <> '%s'`, mark("ok"))).Scan(&n); err != nil || n != 2 {
				t.Fatalf("%s %s: count = %d, %v", tn.slug, mode, n, err)
			}
			fails := []struct{ sql, want string }{
				{fmt.Sprintf(`SELECT count(*) / 0 FROM projects WHERE name <> '%s'`, mark("div")), "22012"},
				// The marker is not part of the key, which the error's
				// DETAIL line shows.
				{fmt.Sprintf(`INSERT INTO projects (name, description) VALUES ('%s', '%s')`, existing, mark("dup")), "23505"},
				{fmt.Sprintf(`SELECT '%s' FROM WHERE`, mark("syntax")), "42601"},
				// An error inside PL/pgSQL: its CONTEXT line would quote
				// the failing statement, which the login roles' pinned
				// log_error_verbosity = terse drops.
				{fmt.Sprintf(`DO $$ BEGIN PERFORM count(*) / 0 FROM projects WHERE name <> '%s'; END $$`, mark("context")), "22012"},
			}
			// A known gap, reported but not asserted: some error messages
			// quote a literal of the query (the message itself, which no
			// setting keeps out of the log). It carries no frame (those
			// never fail that way), but it puts query text in the log.
			gap := func(what string) string {
				m := fmt.Sprintf("logmark-%s-%s-%s-", tn.slug, mode, what)
				gapMarks = append(gapMarks, m)
				return m
			}
			fails = append(fails, struct{ sql, want string }{fmt.Sprintf(`SELECT '%s'::int`, gap("cast")), "22P02"})
			for _, f := range fails {
				_, err := conn.Exec(ctx, f.sql)
				if got := sqlstate(err); got != f.want {
					t.Fatalf("%s %s: %s: err = %v, want SQLSTATE %s", tn.slug, mode, f.sql, err, f.want)
				}
			}
			// A read with a bogus proof, in one transaction.
			proofMark := mark("proof")
			setProof := fmt.Sprintf(`SELECT set_config('erun.tenant_proof', '%s', true)`, bogus)
			read := fmt.Sprintf(`SELECT count(*) FROM projects WHERE name <> '%s'`, proofMark)
			if mode == pgx.QueryExecModeSimpleProtocol {
				_, err = conn.Exec(ctx, setProof+"; "+read)
			} else {
				err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, setProof); err != nil {
						return err
					}
					var n int
					return tx.QueryRow(ctx, read).Scan(&n)
				})
			}
			if got := sqlstate(err); got != "42501" {
				t.Fatalf("%s %s: bogus proof: err = %v, want SQLSTATE 42501", tn.slug, mode, err)
			}
			if err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM projects WHERE name <> '%s'`, mark("after"))).Scan(&n); err != nil || n != 2 {
				t.Fatalf("%s %s: count after the failures = %d, %v", tn.slug, mode, n, err)
			}
		}
	}

	// The admin (a superuser without the login roles' settings) is logged.
	const adminMark = "admin-log-marker"
	if _, err := e.Admin.Exec(ctx, "SELECT '"+adminMark+"'"); err != nil {
		t.Fatal(err)
	}
	var written []byte
	for i := 0; i < 50; i++ {
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) < from {
			t.Fatalf("the server log shrank from %d to %d bytes", from, len(b))
		}
		written = b[from:]
		if bytes.Contains(written, []byte(adminMark)) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !bytes.Contains(written, []byte(adminMark)) {
		t.Fatalf("the admin's statement never reached the log, so this test proves nothing; log since set-up:\n%s", written)
	}
	for _, m := range append([]string{"tenant_proof"}, marks...) {
		if i := bytes.Index(written, []byte(m)); i >= 0 {
			t.Errorf("the server log holds %q:\n%s", m, excerpt(string(written), m))
		}
	}
	if p := proofShape.Find(written); p != nil {
		t.Errorf("the server log holds a proof %q", p)
	}
	gaps := 0
	for _, m := range gapMarks {
		if bytes.Contains(written, []byte(m)) {
			gaps++
			t.Logf("known gap: the server log holds %q:\n%s", m, excerpt(string(written), m))
		}
	}
	t.Logf("known gap: %d of %d markers in error messages reached the log", gaps, len(gapMarks))
	t.Logf("tenant ids in the log (a unique violation under RLS has no DETAIL with the key): A %v, B %v",
		bytes.Contains(written, []byte(e.A.ID.String())), bytes.Contains(written, []byte(e.B.ID.String())))
	t.Logf("%d bytes logged since set-up, %d ERROR lines, %d statement lines:\n%s", len(written),
		bytes.Count(written, []byte("ERROR:")), bytes.Count(written, []byte("statement:")), written)
}
