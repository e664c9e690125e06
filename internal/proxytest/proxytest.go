// Package proxytest starts the real thing for end-to-end tests: a
// PostgreSQL 18 database with the blueprint, the proxy's login roles and
// two seeded tenants, and pgtenant serving it on a loopback port. Clients
// then connect with tokens and API keys as their passwords.
package proxytest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgtenant/pgtenant/auth"
	"github.com/pgtenant/pgtenant/internal/config"
	"github.com/pgtenant/pgtenant/internal/devseed"
	"github.com/pgtenant/pgtenant/internal/migrate"
	"github.com/pgtenant/pgtenant/internal/pgtest"
	"github.com/pgtenant/pgtenant/internal/roles"
	"github.com/pgtenant/pgtenant/internal/serve"
	"github.com/pgtenant/pgtenant/internal/tenantctx"
)

// HMACSecret signs the test tokens.
const HMACSecret = "pgtenant-test-hmac-secret-of-at-least-32-bytes"

const (
	tenantPassword     = "proxytest-tenant-login"
	operationsPassword = "proxytest-operations-login"
)

// Env is a running database and proxy.
type Env struct {
	T        testing.TB
	Server   *pgtest.Server
	AdminDSN string
	DBName   string
	Key      tenantctx.Key
	A, B     devseed.Tenant
	Proxy    *serve.Running
	Config   *config.Config
	Admin    *pgx.Conn
}

// Options adjust the environment.
type Options struct {
	// ExtraYAML is appended to the generated configuration's database
	// block (indented under it), e.g. "pool: {max_size: 1}".
	PoolYAML string
	// TopYAML is appended at the top level.
	TopYAML string
	// JWTYAML replaces the body of the jwt block (default: one HS256 key
	// with HMACSecret).
	JWTYAML string
	// Logger for the proxy; default logs through the test.
	Logger *zap.Logger
	// Server to use instead of the shared one; ServerTLS is the database
	// block's server_tls line (default "server_tls: disable").
	Server    *pgtest.Server
	ServerTLS string
	// ClientTLS replaces the client_tls line (default: mode allow, no cert).
	ClientTLS string
	// WatchActivity turns track_activities back on for the login roles in
	// this test's database, for tests that find a backend in
	// pg_stat_activity by its query (setup-roles turns it off so that
	// tenants cannot read each other's queries there).
	WatchActivity bool
}

// Start brings up a fresh database and a proxy in front of it.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	ctx := context.Background()
	srv := o.Server
	if srv == nil {
		srv = pgtest.Shared(t)
	}
	name, dsn := srv.CreateDatabase(t)
	if _, err := migrate.Run(ctx, dsn, migrate.Options{}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	admin := pgtest.Connect(t, dsn)
	key, err := tenantctx.GenerateKey("proxytest-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := roles.Apply(ctx, admin, roles.Setup{
		Tenant:     roles.Login{Name: roles.DefaultTenantLogin, Password: tenantPassword},
		Operations: roles.Login{Name: roles.DefaultOperationsLogin, Password: operationsPassword},
		ContextKey: key,
	}); err != nil {
		t.Fatalf("setup roles: %v", err)
	}
	if o.WatchActivity {
		for _, l := range []string{roles.DefaultTenantLogin, roles.DefaultOperationsLogin} {
			if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER ROLE %s IN DATABASE %s SET track_activities = on", l, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tenants, err := devseed.Seed(ctx, admin)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	e := &Env{T: t, Server: srv, AdminDSN: dsn, DBName: name, Key: key, A: tenants[0], B: tenants[1], Admin: admin}

	clientTLS := o.ClientTLS
	if clientTLS == "" {
		clientTLS = "client_tls: {mode: allow}"
	}
	serverTLS := o.ServerTLS
	if serverTLS == "" {
		serverTLS = "server_tls: disable"
	}
	poolYAML := o.PoolYAML
	if !strings.Contains(poolYAML, "acquire_timeout") {
		poolYAML += "\nacquire_timeout: 10s" // generous: CI machines are slow
	}
	jwtYAML := o.JWTYAML
	if jwtYAML == "" {
		jwtYAML = fmt.Sprintf("keys: [{alg: HS256, secret: %q}]\nleeway: 1s", HMACSecret)
	}
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
%s
context_key: %q
roles: {tenant: erun_tenant, operations: erun_operations}
jwt:
%s
api_keys: {cache_ttl: 1s, negative_cache_ttl: 1s}
databases:
  %s:
    host: %s
    port: %d
    %s
    logins:
      - {user: %s, password: %q, roles: [erun_tenant]}
      - {user: %s, password: %q, roles: [erun_operations], resolver: true}
    pool:
%s
%s
`, clientTLS, key.Encode(), indent(jwtYAML, "  "), name, srv.Host, srv.Port, serverTLS,
		roles.DefaultTenantLogin, tenantPassword, roles.DefaultOperationsLogin, operationsPassword,
		indent(poolYAML, "      "), o.TopYAML)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	e.Config = cfg
	log := o.Logger
	if log == nil {
		log = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	run, err := serve.Start(ctx, cfg, log)
	if err != nil {
		t.Fatalf("start pgtenant: %v", err)
	}
	e.Proxy = run
	t.Cleanup(func() {
		if err := run.Stop(); err != nil {
			t.Errorf("stop pgtenant: %v", err)
		}
	})
	return e
}

func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n")
}

// Token mints an HS256 token for tenant and role, valid for an hour;
// mutate may change the claims.
func (e *Env) Token(tenant uuid.UUID, role string, mutate func(jwt.MapClaims)) string {
	claims := jwt.MapClaims{"sub": "user-" + role, "role": role, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	if tenant != uuid.Nil {
		claims["tenant_id"] = tenant.String()
	}
	if mutate != nil {
		mutate(claims)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(HMACSecret))
	if err != nil {
		e.T.Fatal(err)
	}
	return s
}

// APIKey creates an API key for tenant and role in the database.
func (e *Env) APIKey(tenant uuid.UUID, role string, expires *time.Time) (key, keyID string) {
	key, keyID, hash, err := auth.NewAPIKey()
	if err != nil {
		e.T.Fatal(err)
	}
	if _, err := e.Admin.Exec(context.Background(), `INSERT INTO api_keys (tenant_id, key_id, secret_hash, name, role, expires_at)
        VALUES ($1, $2, $3, $2, $4, $5)`, tenant, keyID, hash, role, expires); err != nil {
		e.T.Fatal(err)
	}
	return key, keyID
}

// URL is a connection URL to the proxy with password as the credential.
func (e *Env) URL(password string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("app", password), Host: e.Proxy.Addr,
		Path: "/" + e.DBName, RawQuery: "sslmode=disable"}
	return u.String()
}

// Connect opens a pgx connection through the proxy, closed at cleanup.
func (e *Env) Connect(password string, mode pgx.QueryExecMode) *pgx.Conn {
	e.T.Helper()
	return e.ConnectConfig(password, func(cfg *pgx.ConnConfig) { cfg.DefaultQueryExecMode = mode })
}

// CancelOnContext makes pgx send a CancelRequest when a query's context
// ends (its default closes the connection instead).
func CancelOnContext(cfg *pgx.ConnConfig) {
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 10 * time.Second}
	}
}

// ConnectConfig is Connect with the configuration adjusted by mutate.
func (e *Env) ConnectConfig(password string, mutate func(*pgx.ConnConfig)) *pgx.Conn {
	e.T.Helper()
	cfg, err := pgx.ParseConfig(e.URL(password))
	if err != nil {
		e.T.Fatal(err)
	}
	if mutate != nil {
		mutate(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		e.T.Fatalf("connect through pgtenant: %v", err)
	}
	e.T.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// HostPort of the proxy.
func (e *Env) HostPort() (string, string) {
	h, p, _ := net.SplitHostPort(e.Proxy.Addr)
	return h, p
}

// PSQL finds a psql binary: PGTENANT_PSQL, PATH, or Debian's.
func PSQL(t testing.TB) string {
	if p := os.Getenv("PGTENANT_PSQL"); p != "" {
		return p
	}
	for _, p := range append([]string{"/usr/bin/psql"}, globs("/usr/lib/postgresql/*/bin/psql")...) {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("psql not found: install the PostgreSQL client (make test does) or set PGTENANT_PSQL")
	return ""
}

func globs(p string) []string {
	m, _ := filepath.Glob(p)
	return m
}
