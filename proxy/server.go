// Package proxy is pgtenant's client side: it accepts PostgreSQL protocol
// connections, authenticates the password (a JWT or an API key) as an
// identity, and runs each of the client's transactions on a pooled server
// connection with the identity's role and signed tenant context.
//
// Isolation is Postgres's job (row-level security, the login roles' grants,
// the signed context); nothing here may be relied on for it. What the proxy
// inspects (statement kinds) it uses to place the context and to give clear
// errors early.
package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgtenant/pgtenant/auth"
	"github.com/pgtenant/pgtenant/internal/tenantctx"
	"github.com/pgtenant/pgtenant/pool"
)

// TLSMode says when clients must use TLS.
type TLSMode string

const (
	TLSRequireNonLoopback TLSMode = "require_non_loopback"
	TLSRequire            TLSMode = "require"
	TLSAllow              TLSMode = "allow"
	TLSDisable            TLSMode = "disable"
)

// Database is a database clients may name, with one pool per PostgreSQL
// role it serves.
type Database struct {
	Name  string
	Pools map[string]*pool.Pool // PostgreSQL role -> pool of the login granted it
	// Auth verifies credentials for this database (API keys live in it).
	Auth *auth.Authenticator
}

// Options configure a Server.
type Options struct {
	Databases    map[string]*Database
	ContextKey   tenantctx.Key
	TLS          *tls.Config // nil: SSLRequest is answered 'N'
	TLSMode      TLSMode
	LoginTimeout time.Duration
	Logger       *zap.Logger
	// MaxServerStatements bounds the prepared statements per server
	// connection (LRU); MaxClientStatements those per client.
	MaxServerStatements int
	MaxClientStatements int
}

// Server accepts client connections.
type Server struct {
	opts    Options
	log     *zap.Logger
	cancels sync.Map // cancelKey -> *session
	metrics metrics

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	closing  atomic.Bool
	paramsMu sync.Mutex
	params   map[*pool.Pool]map[string]string
}

type metrics struct {
	authFailures atomic.Int64
	poolTimeouts atomic.Int64
	sessions     atomic.Int64
}

type cancelKey struct{ pid, secret uint32 }

// New builds a server.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.LoginTimeout == 0 {
		opts.LoginTimeout = 15 * time.Second
	}
	if opts.TLSMode == "" {
		opts.TLSMode = TLSRequireNonLoopback
	}
	if opts.MaxServerStatements == 0 {
		opts.MaxServerStatements = 500
	}
	if opts.MaxClientStatements == 0 {
		opts.MaxClientStatements = 5000
	}
	return &Server{opts: opts, log: opts.Logger, conns: map[net.Conn]struct{}{},
		params: map[*pool.Pool]map[string]string{}}
}

// Serve accepts connections on l until ctx is done or l fails. It waits for
// the connections it started to end before returning.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	go func() {
		<-ctx.Done()
		s.closing.Store(true)
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				s.wg.Wait()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.handle(ctx, c)
		}()
	}
}

// CloseClients disconnects every client (after the shutdown grace period),
// and closes the server connections sessions hold, so that a session
// waiting on its server ends too.
func (s *Server) CloseClients() {
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.cancels.Range(func(_, v any) bool {
		sess := v.(*session)
		sess.mu.Lock()
		if sess.server != nil {
			sess.server.Net.Close()
		}
		sess.mu.Unlock()
		return true
	})
}

func (s *Server) handle(ctx context.Context, conn net.Conn) {
	log := s.log.With(zap.String("client", conn.RemoteAddr().String()))
	conn.SetDeadline(time.Now().Add(s.opts.LoginTimeout))
	sess, err := s.startup(ctx, conn, log)
	if err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, errHandled) {
			log.Info("connection ended during start-up", zap.Error(err))
		}
		return
	}
	conn.SetDeadline(time.Time{})
	s.metrics.sessions.Add(1)
	defer s.cancels.Delete(sess.key)
	if err := sess.run(ctx); err != nil {
		log.Info("session ended", zap.Error(err))
	}
}

// errHandled: the client has already been told why.
var errHandled = errors.New("handled")

// startup runs the start-up and authentication exchange.
func (s *Server) startup(ctx context.Context, conn net.Conn, log *zap.Logger) (*session, error) {
	r := bufio.NewReaderSize(conn, 16<<10)
	var startup *pgproto3.StartupMessage
	tlsDone := false
	for startup == nil {
		msg, err := readStartup(r)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				writeFatal(conn, errProtocol("invalid start-up packet: %v", err))
				return nil, errHandled
			}
			return nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if tlsDone || s.opts.TLS == nil || s.opts.TLSMode == TLSDisable {
				if _, err := conn.Write([]byte{'N'}); err != nil {
					return nil, err
				}
				continue
			}
			if r.Buffered() > 0 {
				// Bytes after SSLRequest before the handshake: a
				// man-in-the-middle injection attempt (CVE-2021-23222).
				writeFatal(conn, errProtocol("unexpected data after SSLRequest"))
				return nil, errHandled
			}
			if _, err := conn.Write([]byte{'S'}); err != nil {
				return nil, err
			}
			tc := tls.Server(conn, s.opts.TLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				return nil, fmt.Errorf("TLS handshake: %w", err)
			}
			conn, tlsDone = tc, true
			r = bufio.NewReaderSize(conn, 16<<10)
		case *pgproto3.GSSEncRequest:
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case *pgproto3.CancelRequest:
			s.cancel(cancelKey{m.ProcessID, binary.BigEndian.Uint32(padKey(m.SecretKey))})
			return nil, errHandled
		case *pgproto3.StartupMessage:
			startup = m
		}
	}
	w := bufio.NewWriterSize(conn, 32<<10)
	user := startup.Parameters["user"]
	dbName := startup.Parameters["database"]
	if dbName == "" {
		dbName = user
	}
	if !tlsDone && s.tlsRequired(conn) {
		writeFatal(conn, &pgError{Code: "28000", Message: "pgtenant requires TLS for this connection",
			Hint: "Connect with sslmode=require (or verify-full)."})
		return nil, errHandled
	}
	db := s.opts.Databases[dbName]
	if db == nil {
		writeFatal(conn, &pgError{Code: "3D000", Message: fmt.Sprintf("database %q does not exist", dbName)})
		return nil, errHandled
	}

	if startup.ProtocolVersion != pgproto3.ProtocolVersion30 {
		var unknown []string
		for k := range startup.Parameters {
			if strings.HasPrefix(k, "_pq_.") {
				unknown = append(unknown, k)
			}
		}
		msg := pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknown}
		b, _ := msg.Encode(nil)
		w.Write(b)
	}
	// Cleartext password: the credential is a token, checked here.
	w.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 3})
	if err := w.Flush(); err != nil {
		return nil, err
	}
	cr := msgReader{r: r}
	typ, body, err := cr.next()
	if err != nil {
		return nil, err
	}
	if typ != 'p' {
		writeFatal(conn, errProtocol("expected a password message, got %q", typ))
		return nil, errHandled
	}
	password, _, ok := cstring(body)
	if !ok {
		writeFatal(conn, errProtocol("malformed password message"))
		return nil, errHandled
	}
	id, err := db.Auth.Authenticate(ctx, password)
	if err != nil {
		if auth.IsFailure(err) {
			s.metrics.authFailures.Add(1)
			log.Info("authentication failed", zap.String("user", user), zap.String("reason", err.Error()))
			writeFatal(conn, errAuthFailed(user))
			return nil, errHandled
		}
		log.Error("authentication could not be completed", zap.Error(err))
		writeFatal(conn, &pgError{Code: "08006", Message: "pgtenant could not verify the credential: the credential store is unavailable"})
		return nil, errHandled
	}
	p := db.Pools[id.Role]
	if p == nil {
		s.metrics.authFailures.Add(1)
		log.Info("authentication failed", zap.String("user", user), zap.String("reason", "no login serves role "+id.Role))
		writeFatal(conn, errAuthFailed(user))
		return nil, errHandled
	}
	params, err := s.serverParams(ctx, p)
	if err != nil {
		log.Error("cannot connect to the database server", zap.Error(err))
		writeFatal(conn, &pgError{Code: "08006", Message: "pgtenant: cannot connect to the database server", Hint: err.Error()})
		return nil, errHandled
	}

	startSettings, refused := startupSettings(startup.Parameters)
	if refused != nil {
		writeFatal(conn, refused)
		return nil, errHandled
	}
	sess := &session{srv: s, client: conn, cr: cr, cw: w, id: id, pool: p, settings: startSettings,
		stmts: map[string]*preparedStmt{}, portalKinds: map[string]stmtKind{}, portalBegin: map[string]string{}, portalChanges: map[string]settingChange{}, portalLocal: map[string]string{},
		log: log.With(zap.String("tenant", id.TenantID.String()), zap.String("role", id.Role), zap.String("subject", id.Subject))}
	tenant := ""
	if id.TenantID != [16]byte{} {
		tenant = id.TenantID.String()
		sess.signer = s.opts.ContextKey.Signer(id.TenantID)
	}
	sess.baseFrame, sess.nBase = frameSQL(id.Role, tenant)
	sess.refreshFrame()
	sess.key = s.register(sess)

	w.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 0}) // AuthenticationOk
	for _, k := range reportedParams {
		v, ok := params[k]
		if cv, given := startup.Parameters[k]; given && k != "client_encoding" {
			v, ok = cv, true // the client's own start-up value, replayed in each transaction
		}
		switch k {
		case "application_name":
			v, ok = startup.Parameters[k], true
		case "session_authorization":
			v, ok = user, true
		case "is_superuser":
			v, ok = "off", true
		}
		if ok {
			w.Write(appendMsg(nil, 'S', append(append(append([]byte(k), 0), v...), 0)))
		}
	}
	var bkd [8]byte
	binary.BigEndian.PutUint32(bkd[:4], sess.key.pid)
	binary.BigEndian.PutUint32(bkd[4:], sess.key.secret)
	w.Write(appendMsg(nil, 'K', bkd[:]))
	w.Write(appendReadyForQuery(nil, 'I'))
	if err := w.Flush(); err != nil {
		return nil, err
	}
	log.Debug("client authenticated", zap.String("source", string(id.Source)), zap.String("role", id.Role))
	return sess, nil
}

// reportedParams is what a PostgreSQL 18 server reports at start-up.
var reportedParams = []string{"application_name", "client_encoding", "DateStyle", "default_transaction_read_only",
	"in_hot_standby", "integer_datetimes", "IntervalStyle", "is_superuser", "scram_iterations", "search_path",
	"server_encoding", "server_version", "session_authorization", "standard_conforming_strings", "TimeZone"}

// serverParams returns the ParameterStatus values of p's server, dialling
// once if the pool has never connected.
func (s *Server) serverParams(ctx context.Context, p *pool.Pool) (map[string]string, error) {
	s.paramsMu.Lock()
	params := s.params[p]
	s.paramsMu.Unlock()
	if params != nil {
		return params, nil
	}
	c, err := p.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	params = c.Params
	p.Release(c)
	s.paramsMu.Lock()
	s.params[p] = params
	s.paramsMu.Unlock()
	return params, nil
}

func (s *Server) tlsRequired(conn net.Conn) bool {
	switch s.opts.TLSMode {
	case TLSRequire:
		return true
	case TLSRequireNonLoopback:
		addr, ok := conn.RemoteAddr().(*net.TCPAddr)
		return ok && !addr.IP.IsLoopback()
	}
	return false
}

func (s *Server) register(sess *session) cancelKey {
	for {
		var b [8]byte
		rand.Read(b[:])
		k := cancelKey{binary.BigEndian.Uint32(b[:4]), binary.BigEndian.Uint32(b[4:])}
		if _, loaded := s.cancels.LoadOrStore(k, sess); !loaded {
			return k
		}
	}
}

// cancel forwards a client's CancelRequest to the server connection its
// session holds right now, if that connection is running a request. A
// cancel for an idle session is dropped: there is nothing to cancel, and
// the server connection it used last may belong to someone else by now.
func (s *Server) cancel(k cancelKey) {
	v, ok := s.cancels.Load(k)
	if !ok {
		return
	}
	sess := v.(*session)
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.server == nil || !sess.busy || sess.cancelled != nil {
		return
	}
	done := make(chan struct{})
	sess.cancelled = done
	c := sess.server
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sess.pool.Cancel(ctx, c); err != nil {
			s.log.Warn("cancel request to the server failed", zap.Error(err))
		}
	}()
}

func padKey(k []byte) []byte {
	if len(k) >= 4 {
		return k[:4]
	}
	return append(make([]byte, 4-len(k)), k...)
}

// readStartup reads one untyped start-up packet.
func readStartup(r *bufio.Reader) (pgproto3.FrontendMessage, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n < 8 || n > 10000 {
		return nil, fmt.Errorf("start-up packet length %d", n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	code := binary.BigEndian.Uint32(body)
	var msg pgproto3.FrontendMessage
	switch code {
	case 80877103:
		msg = &pgproto3.SSLRequest{}
	case 80877104:
		msg = &pgproto3.GSSEncRequest{}
	case 80877102:
		msg = &pgproto3.CancelRequest{}
	case pgproto3.ProtocolVersion30:
		msg = &pgproto3.StartupMessage{}
	default:
		if code>>16 == 3 {
			// 3.x with x > 0: answered with NegotiateProtocolVersion, then
			// served as 3.0 (which every client must accept).
			binary.BigEndian.PutUint32(body, pgproto3.ProtocolVersion30)
			m := &pgproto3.StartupMessage{}
			if err := m.Decode(body); err != nil {
				return nil, err
			}
			m.ProtocolVersion = code
			return m, nil
		}
		return nil, fmt.Errorf("unsupported protocol version %d.%d", code>>16, code&0xffff)
	}
	if err := msg.Decode(body); err != nil {
		return nil, err
	}
	return msg, nil
}

func writeFatal(conn net.Conn, e *pgError) {
	e.Severity = "FATAL"
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	conn.Write(e.appendTo(nil))
}
