// Package devenv is `pgtenant dev`: a persistent local PostgreSQL 18 with the
// blueprint migrated, the proxy's login roles set up and two demo tenants
// seeded. Secrets are generated on the first run and kept, with the data, in
// a git-ignored directory, so a second run reuses everything.
package devenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/pgtenant/pgtenant/internal/devseed"
	"github.com/pgtenant/pgtenant/internal/migrate"
	"github.com/pgtenant/pgtenant/internal/pgcluster"
	"github.com/pgtenant/pgtenant/internal/roles"
	"github.com/pgtenant/pgtenant/internal/serve"
	"github.com/pgtenant/pgtenant/internal/tenantctx"
)

// Options configure the environment.
type Options struct {
	Dir      string // state directory, e.g. .pgtenant/dev
	BinDir   string // PostgreSQL 18 binaries
	Port     int    // PostgreSQL port on 127.0.0.1
	Database string
	Listen   string // the proxy's address
}

// state is what the first run generates and later runs reuse.
type state struct {
	SuperuserPassword  string `json:"superuser_password"`
	TenantPassword     string `json:"tenant_login_password"`
	OperationsPassword string `json:"operations_login_password"`
	ContextKey         string `json:"context_key"`
	DataDir            string `json:"data_dir"`
	JWTSecret          string `json:"jwt_secret"`
	// APIKeys are created once and kept, by tenant slug ("operations" for
	// the operations key).
	APIKeys map[string]string `json:"api_keys"`
}

// Env is a running development environment.
type Env struct {
	Cluster  *pgcluster.Cluster
	Tenants  []devseed.Tenant
	AdminDSN string
	Proxy    *serve.Running
	Clients  Clients
	state    state
	opts     Options
	key      tenantctx.Key
}

// Start brings the environment up; Stop shuts it down.
func Start(ctx context.Context, log *zap.Logger, opts Options) (*Env, error) {
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	st, err := loadState(opts.Dir)
	if err != nil {
		return nil, err
	}
	key, err := tenantctx.ParseKey(st.ContextKey)
	if err != nil {
		return nil, err
	}
	c, err := pgcluster.New(pgcluster.Options{
		BinDir:   opts.BinDir,
		DataDir:  st.DataDir,
		Port:     opts.Port,
		Password: st.SuperuserPassword,
		Settings: map[string]string{"max_connections": "200"},
	})
	if err != nil {
		return nil, err
	}
	if c.Major < 18 {
		return nil, fmt.Errorf("%s holds PostgreSQL %d; pgtenant needs 18 or newer (uuidv7())", opts.BinDir, c.Major)
	}
	if !c.Initialized() {
		log.Info("creating the development cluster", zap.String("data_dir", st.DataDir))
		if err := c.Init(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	env := &Env{Cluster: c, state: st, opts: opts, key: key,
		AdminDSN: c.DSN("postgres", st.SuperuserPassword, opts.Database)}
	if err := env.prepare(ctx, log); err != nil {
		c.Stop()
		return nil, err
	}
	if err := env.startProxy(ctx, log); err != nil {
		c.Stop()
		return nil, err
	}
	return env, nil
}

func (e *Env) prepare(ctx context.Context, log *zap.Logger) error {
	admin, err := pgx.Connect(ctx, e.Cluster.DSN("postgres", e.state.SuperuserPassword, "postgres"))
	if err != nil {
		return err
	}
	var exists bool
	err = admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, e.opts.Database).Scan(&exists)
	if err == nil && !exists {
		_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{e.opts.Database}.Sanitize())
	}
	admin.Close(ctx)
	if err != nil {
		return fmt.Errorf("create database %s: %w", e.opts.Database, err)
	}
	if _, err := migrate.Run(ctx, e.AdminDSN, migrate.Options{Logger: log, Operator: "pgtenant dev"}); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, e.AdminDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := roles.Apply(ctx, conn, roles.Setup{
		Tenant:     roles.Login{Name: roles.DefaultTenantLogin, Password: e.state.TenantPassword},
		Operations: roles.Login{Name: roles.DefaultOperationsLogin, Password: e.state.OperationsPassword},
		ContextKey: e.key,
	}); err != nil {
		return err
	}
	e.Tenants, err = devseed.Seed(ctx, conn)
	return err
}

// Stop shuts the proxy, then PostgreSQL, down cleanly.
func (e *Env) Stop() error {
	var err error
	if e.Proxy != nil {
		err = e.Proxy.Stop()
	}
	return errors.Join(err, e.Cluster.Stop())
}

// PrintInstructions writes how to connect to out.
func (e *Env) PrintInstructions(out io.Writer) {
	fmt.Fprintf(out, "\npgtenant dev: proxy on %s in front of PostgreSQL %d on %s (database %q, data in %s)\n\n",
		e.Clients.Proxy, e.Cluster.Major, e.Cluster.Addr(), e.opts.Database, e.state.DataDir)
	for _, c := range append(e.Clients.Tenants, e.Clients.Operations) {
		who := "tenant " + c.TenantID
		if c.TenantID == "" {
			who = "all tenants"
		}
		fmt.Fprintf(out, "%s (%s)\n  psql '%s'\n  psql '%s'   # API key\n\n",
			c.Name, who, c.DatabaseURL, c.DatabaseURLAPIKey)
	}
	fmt.Fprintf(out, "Superuser, directly to PostgreSQL (bypasses the proxy):\n  psql '%s'\n\n", e.AdminDSN)
	fmt.Fprintf(out, "The same, machine-readable: %s\n", filepath.Join(e.opts.Dir, "clients.json"))
	fmt.Fprintln(out, "Press Ctrl-C to stop; running it again reuses the data.")
}

func loadState(dir string) (state, error) {
	path := filepath.Join(dir, "state.json")
	var st state
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &st); err != nil {
			return st, fmt.Errorf("%s: %w", path, err)
		}
		if st.JWTSecret != "" {
			return st, nil
		}
		// State from before the proxy joined: add what is missing.
		st.JWTSecret = randomHex(32)
		b, _ = json.MarshalIndent(st, "", "  ")
		return st, os.WriteFile(path, b, 0o600)
	case !errors.Is(err, os.ErrNotExist):
		return st, err
	}
	key, err := tenantctx.GenerateKey("dev-1")
	if err != nil {
		return st, err
	}
	dataDir, err := dataDirFor(dir)
	if err != nil {
		return st, err
	}
	st = state{
		JWTSecret:          randomHex(32),
		SuperuserPassword:  randomHex(16),
		TenantPassword:     randomHex(16),
		OperationsPassword: randomHex(16),
		ContextKey:         key.Encode(),
		DataDir:            dataDir,
	}
	b, _ = json.MarshalIndent(st, "", "  ")
	return st, os.WriteFile(path, b, 0o600)
}

// dataDirFor keeps the data under dir, unless we are root and the server's
// unprivileged user could not reach it (a checkout in a private directory):
// then it lives under /var/lib/pgtenant, keyed by dir.
func dataDirFor(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	inside := filepath.Join(abs, "pgdata")
	if os.Geteuid() != 0 || reachableByOthers(abs) {
		return inside, nil
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join("/var/lib/pgtenant", "dev-"+hex.EncodeToString(sum[:6]), "pgdata"), nil
}

// reachableByOthers reports whether every directory from / to dir can be
// traversed by users other than its owner.
func reachableByOthers(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Key is the context signing key (for tools that frame transactions
// themselves, as the benchmarks' direct baseline does).
func (e *Env) Key() tenantctx.Key { return e.key }

// TenantLogin is the tenant login role and its password.
func (e *Env) TenantLogin() (user, password string) {
	return roles.DefaultTenantLogin, e.state.TenantPassword
}
