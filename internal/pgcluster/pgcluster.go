// Package pgcluster runs a local PostgreSQL server from a bin directory:
// initdb, start, wait until it accepts connections, stop.
//
// It is used by the test harness (throwaway clusters) and by `pgtenant dev`
// (a persistent cluster). PostgreSQL refuses to run as root, so when the
// caller is root the server runs as an unprivileged system user; the data
// directory is handed to that user and, if the binaries are not reachable by
// it (a checkout under /root, say), they are mirrored into a world-readable
// directory first. It never touches a data directory it did not create.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options describe a cluster. Zero values choose test-friendly defaults where
// noted.
type Options struct {
	BinDir   string // directory with initdb and postgres (required)
	DataDir  string // created by Init when it does not hold a cluster
	Port     int    // 0 picks a free port on 127.0.0.1
	Password string // superuser password (user "postgres"), SCRAM over TCP
	// Settings are passed to the server as -c name=value.
	Settings map[string]string
	// LogFile receives the server's output; default DataDir/postgres.log.
	LogFile string
}

// Cluster is a running (or stopped) server.
type Cluster struct {
	opts  Options
	cmd   *exec.Cmd
	done  chan struct{}
	exit  error
	cred  *syscall.Credential
	bin   string
	Port  int
	Major int
}

// FastSettings trade durability for speed; for throwaway test clusters only.
var FastSettings = map[string]string{
	"fsync":              "off",
	"synchronous_commit": "off",
	"full_page_writes":   "off",
}

// New prepares a cluster: resolves the user to run as and the binaries.
func New(opts Options) (*Cluster, error) {
	if opts.BinDir == "" {
		return nil, errors.New("pgcluster: no bin directory given")
	}
	if opts.DataDir == "" {
		return nil, errors.New("pgcluster: no data directory given")
	}
	c := &Cluster{opts: opts, bin: opts.BinDir, done: make(chan struct{})}
	if os.Geteuid() == 0 {
		cred, err := unprivilegedUser()
		if err != nil {
			return nil, err
		}
		c.cred = cred
		if c.bin, err = reachableBinDir(opts.BinDir, cred); err != nil {
			return nil, err
		}
	}
	major, err := Major(c.bin)
	if err != nil {
		return nil, err
	}
	c.Major = major
	return c, nil
}

// Major returns the major version of binDir/postgres.
func Major(binDir string) (int, error) {
	out, err := exec.Command(filepath.Join(binDir, "postgres"), "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("pgcluster: %s/postgres --version: %w", binDir, err)
	}
	// "postgres (PostgreSQL) 18.4" or "... 15.18 (Debian 15.18-0+deb12u1)"
	fields := strings.Fields(string(out))
	if len(fields) < 3 {
		return 0, fmt.Errorf("pgcluster: unexpected version output %q", out)
	}
	major, err := strconv.Atoi(strings.SplitN(fields[2], ".", 2)[0])
	if err != nil {
		return 0, fmt.Errorf("pgcluster: unexpected version output %q", out)
	}
	return major, nil
}

// Initialized reports whether DataDir already holds a cluster.
func (c *Cluster) Initialized() bool {
	_, err := os.Stat(filepath.Join(c.opts.DataDir, "PG_VERSION"))
	return err == nil
}

// Init runs initdb with a password-protected superuser "postgres": trust on
// the Unix socket (owned by the server's user), SCRAM over TCP.
func (c *Cluster) Init(ctx context.Context) error {
	// Parents must stay traversable for the server's user.
	if err := os.MkdirAll(filepath.Dir(c.opts.DataDir), 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(c.opts.DataDir, 0o700); err != nil {
		return err
	}
	if err := c.chown(c.opts.DataDir); err != nil {
		return err
	}
	pw, err := os.CreateTemp("", "pgtenant-initdb-pw-")
	if err != nil {
		return err
	}
	pwfile := pw.Name()
	defer os.Remove(pwfile)
	_, err = pw.WriteString(c.opts.Password + "\n")
	if cerr := pw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := c.chown(pwfile); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "initdb"),
		"-D", c.opts.DataDir, "-U", "postgres", "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--no-locale", "--no-instructions")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgcluster: initdb: %w\n%s", err, out)
	}
	return nil
}

// Start launches the server as a child process and waits until it accepts
// TCP connections. The child gets SIGQUIT (immediate shutdown) if this
// process dies, so an interrupted test run leaves no server behind.
func (c *Cluster) Start(ctx context.Context) error {
	port := c.opts.Port
	if port == 0 {
		p, err := FreePort()
		if err != nil {
			return err
		}
		port = p
	}
	c.Port = port
	logPath := c.opts.LogFile
	if logPath == "" {
		logPath = filepath.Join(c.opts.DataDir, "postgres.log")
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := []string{"-D", c.opts.DataDir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + c.opts.DataDir}
	for k, v := range c.opts.Settings {
		args = append(args, "-c", k+"="+v)
	}
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: c.cred,
		Setpgid:    true, // a terminal's Ctrl-C goes to us; we stop the server cleanly
		Pdeathsig:  syscall.SIGQUIT,
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	c.cmd = cmd
	go func() {
		c.exit = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	return c.waitReady(ctx, logPath)
}

func (c *Cluster) waitReady(ctx context.Context, logPath string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-c.done:
			return fmt.Errorf("pgcluster: postgres exited during start-up (%v):\n%s", c.exit, tail(logPath))
		default:
		}
		conn, err := net.DialTimeout("tcp", c.Addr(), time.Second)
		if err == nil {
			conn.Close()
			// Accepting TCP is not yet accepting logins; the postmaster
			// writes "ready" into postmaster.pid when it is.
			if pid, _ := os.ReadFile(filepath.Join(c.opts.DataDir, "postmaster.pid")); bytes.Contains(pid, []byte("ready")) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			c.Stop()
			return fmt.Errorf("pgcluster: postgres did not become ready within 60s:\n%s", tail(logPath))
		}
		select {
		case <-ctx.Done():
			c.Stop()
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Addr is host:port of the running server.
func (c *Cluster) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)) }

// DSN returns a URL for user/password on database db.
func (c *Cluster) DSN(user, password, db string) string {
	return DSN("127.0.0.1", c.Port, user, password, db)
}

// Done is closed when the server process has exited.
func (c *Cluster) Done() <-chan struct{} { return c.done }

// Stop asks for a fast shutdown and waits for the server to exit; after 30
// seconds it escalates to an immediate shutdown.
func (c *Cluster) Stop() error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	select {
	case <-c.done:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Signal(syscall.SIGQUIT)
		<-c.done
	}
	return nil
}

func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	return os.Chown(path, int(c.cred.Uid), int(c.cred.Gid))
}

// Chown hands path to the user the server runs as (a no-op unless root).
func (c *Cluster) Chown(path string) error { return c.chown(path) }

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// DSN builds a postgres URL with sslmode=disable (loopback only).
func DSN(host string, port int, user, password, db string) string {
	u := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable",
		urlUserinfo(user, password), net.JoinHostPort(host, strconv.Itoa(port)), db)
	return u
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
