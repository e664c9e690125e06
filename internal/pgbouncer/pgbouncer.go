// Package pgbouncer runs PgBouncer in transaction mode in front of a
// PostgreSQL server, for comparisons (make bench, make compat). It is not
// part of pgtenant.
package pgbouncer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options describe the PgBouncer to start.
type Options struct {
	Dir          string            // working directory (config, log, pid)
	ServerPort   string            // PostgreSQL on 127.0.0.1
	Database     string            // database name, the same on both sides
	Users        map[string]string // user -> password
	PoolSize     int               // default_pool_size
	MaxClientCon int
	// IgnoreStartupParameters, as PgBouncer's ignore_startup_parameters
	// (JDBC needs extra_float_digits there).
	IgnoreStartupParameters string
}

// Binary finds pgbouncer.
func Binary() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", errors.New("pgbouncer is not installed (Debian package pgbouncer)")
}

// Start runs PgBouncer (as the postgres user when we are root: it refuses
// root) and returns its address and a stop function.
func Start(o Options) (string, func(), error) {
	bin, err := Binary()
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if o.MaxClientCon == 0 {
		o.MaxClientCon = 1000
	}
	ini := fmt.Sprintf(`[databases]
%s = host=127.0.0.1 port=%s dbname=%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s/userlist.txt
pool_mode = transaction
default_pool_size = %d
max_client_conn = %d
logfile = %s/pgbouncer.log
pidfile = %s/pgbouncer.pid
ignore_startup_parameters = %s
`, o.Database, o.ServerPort, o.Database, port, o.Dir, o.PoolSize, o.MaxClientCon, o.Dir, o.Dir, o.IgnoreStartupParameters)
	if err := os.WriteFile(filepath.Join(o.Dir, "pgbouncer.ini"), []byte(ini), 0o644); err != nil {
		return "", nil, err
	}
	var users strings.Builder
	for u, p := range o.Users {
		fmt.Fprintf(&users, "%q %q\n", u, p)
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "userlist.txt"), []byte(users.String()), 0o644); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, filepath.Join(o.Dir, "pgbouncer.ini"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", nil, errors.New("no unprivileged user postgres to run pgbouncer as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chmod(o.Dir, 0o777)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for i := 0; ; i++ {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			cmd.Process.Kill()
			log, _ := os.ReadFile(filepath.Join(o.Dir, "pgbouncer.log"))
			return "", nil, fmt.Errorf("pgbouncer did not start: %s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }, nil
}
