// Package pgtest gives tests a real PostgreSQL 18 server.
//
// By default each test binary starts one throwaway cluster (initdb into a
// temporary directory, a free port, fsync off) the first time a test asks
// for it, and removes it when the binary exits, also after a failed or
// interrupted run: the server dies with its parent, and clusters left by a
// killed run are swept at the next start. Each test then works in databases
// of its own, dropped at cleanup.
//
// PGTENANT_TEST_DSN points the suite at an external server instead (a
// superuser URL); PG_BIN chooses the binaries; with the build tag
// "testcontainers", PGTENANT_TEST_BACKEND=docker starts postgres:18 in a
// container.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/pgcluster"
)

// Server is a PostgreSQL server the tests may create databases and roles on.
type Server struct {
	// AdminDSN is a superuser URL for the "postgres" database.
	AdminDSN string
	Host     string
	Port     int
	Major    int

	cluster   *pgcluster.Cluster // nil for an external server
	dir       string
	terminate func() // stops a container backend
}

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
)

// Main runs the tests and stops the shared server afterwards.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	os.Exit(code)
}

// Shared returns the package's shared server, starting it on first use.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	sharedOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared, sharedErr = startShared(ctx)
	})
	if sharedErr != nil {
		tb.Fatalf("pgtest: %v", sharedErr)
	}
	return shared
}

func startShared(ctx context.Context) (*Server, error) {
	if dsn := os.Getenv("PGTENANT_TEST_DSN"); dsn != "" {
		return external(ctx, dsn)
	}
	if os.Getenv("PGTENANT_TEST_BACKEND") == "docker" {
		if startContainer == nil {
			return nil, errors.New("PGTENANT_TEST_BACKEND=docker needs the build tag testcontainers (go test -tags testcontainers)")
		}
		return startContainer(ctx)
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	return Start(ctx, bin)
}

// startContainer is set by the testcontainers backend when built with its tag.
var startContainer func(context.Context) (*Server, error)

func external(ctx context.Context, dsn string) (*Server, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("PGTENANT_TEST_DSN: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("PGTENANT_TEST_DSN: %w", err)
	}
	defer conn.Close(ctx)
	var num int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		return nil, err
	}
	return &Server{AdminDSN: dsn, Host: cfg.Host, Port: int(cfg.Port), Major: num / 10000}, nil
}

// BinDir finds the PostgreSQL 18 binaries: PG_BIN, else the directory that
// scripts/provision-postgres.sh linked into the repository's cache.
func BinDir() (string, error) {
	if bin := os.Getenv("PG_BIN"); bin != "" {
		return bin, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, ".cache", "postgres", "bin")
	if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		return "", fmt.Errorf("no PostgreSQL 18 binaries: set PG_BIN or run scripts/provision-postgres.sh (make test does): %w", err)
	}
	return bin, nil
}

// RepoRoot is the directory holding go.mod.
func RepoRoot() (string, error) { return repoRoot() }

func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("pgtest: cannot locate the repository")
	}
	return filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
}

const dirPrefix = "pgtenant-test-"

// Start starts a throwaway cluster from binDir. The caller stops it with
// Stop (Main does for the shared server).
func Start(ctx context.Context, binDir string) (*Server, error) {
	return StartWith(ctx, binDir, nil, nil)
}

// StartWith is Start with extra server settings and files written into the
// data directory before the server starts (for example server.crt and
// server.key with ssl=on), owned by the server's user, mode 0600.
func StartWith(ctx context.Context, binDir string, settings map[string]string, files map[string][]byte) (*Server, error) {
	sweepStale()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, err
	}
	// Record our pid so that a later run can tell this directory is stale.
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	password := randomHex(12)
	var last error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken before the server binds it
		all := testSettings()
		for k, v := range settings {
			all[k] = v
		}
		c, err := pgcluster.New(pgcluster.Options{
			BinDir:   binDir,
			DataDir:  filepath.Join(dir, "data"),
			Password: password,
			Settings: all,
		})
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := c.Chown(dir); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if !c.Initialized() {
			if err := c.Init(ctx); err != nil {
				os.RemoveAll(dir)
				return nil, err
			}
			for name, b := range files {
				path := filepath.Join(dir, "data", name)
				if err := os.WriteFile(path, b, 0o600); err != nil {
					os.RemoveAll(dir)
					return nil, err
				}
				if err := c.Chown(path); err != nil {
					os.RemoveAll(dir)
					return nil, err
				}
			}
		}
		if last = c.Start(ctx); last == nil {
			return &Server{
				AdminDSN: c.DSN("postgres", password, "postgres"),
				Host:     "127.0.0.1",
				Port:     c.Port,
				Major:    c.Major,
				cluster:  c,
				dir:      dir,
			}, nil
		}
	}
	os.RemoveAll(dir)
	return nil, last
}

func testSettings() map[string]string {
	s := map[string]string{
		"max_connections":  "300",
		"log_min_messages": "warning",
	}
	for k, v := range pgcluster.FastSettings {
		s[k] = v
	}
	return s
}

// LogFile is the server's log, or "" for a server the tests did not start.
func (s *Server) LogFile() string {
	if s.cluster == nil {
		return ""
	}
	return filepath.Join(s.dir, "data", "postgres.log")
}

// Stop stops a server started by Start and removes its files.
func (s *Server) Stop() { s.stop() }

func (s *Server) stop() {
	if s.terminate != nil {
		s.terminate()
	}
	if s.cluster != nil {
		s.cluster.Stop()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// sweepStale removes clusters whose owning test process no longer exists
// (a run killed with SIGKILL cannot clean up after itself).
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || processAlive(pid) {
			continue
		}
		os.RemoveAll(d)
	}
}

func processAlive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// DSN returns a URL for user/password on database db of this server.
func (s *Server) DSN(user, password, db string) string {
	u, err := url.Parse(s.AdminDSN)
	if err != nil {
		panic(err)
	}
	if password == "" {
		u.User = url.User(user)
	} else {
		u.User = url.UserPassword(user, password)
	}
	u.Path = "/" + db
	return u.String()
}

// CreateDatabase creates an empty database with a unique name and drops it
// when the test ends. It returns the name and a superuser URL for it.
func (s *Server) CreateDatabase(tb testing.TB) (name, dsn string) {
	tb.Helper()
	name = "t_" + randomHex(6)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.AdminDSN)
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(ctx, s.AdminDSN)
		if err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return name, s.DSN(adminUser(s.AdminDSN), adminPassword(s.AdminDSN), name)
}

// Connect opens a pgx connection closed at test cleanup.
func Connect(tb testing.TB, dsn string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func adminUser(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return "postgres"
	}
	return u.User.Username()
}

func adminPassword(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
