package proxy

import (
	"bufio"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/pgtenant/pgtenant/auth"
	"github.com/pgtenant/pgtenant/internal/tenantctx"
	"github.com/pgtenant/pgtenant/pool"
	"github.com/pgtenant/pgtenant/proxy/copyfrom"
)

// session is one client connection after authentication. It reads the
// client's messages, frames them into transactions, lends a server
// connection for each transaction, and relays the responses.
type session struct {
	srv    *Server
	log    *zap.Logger
	client net.Conn
	cr     msgReader
	cw     *bufio.Writer
	id     auth.Identity
	pool   *pool.Pool
	key    cancelKey
	// The frame: the role and tenant id (base), the tenant proof of the
	// current loan, then the client's session settings replayed as SET
	// LOCAL.
	baseFrame string
	nBase     int
	proofSQL  []byte            // "; SET LOCAL erun.tenant_proof = '…'", rebuilt by lend
	signer    *tenantctx.Signer // nil without a tenant
	replay    string
	nReplay   int
	modes     []transactionMode
	frames    frames
	settings  settings
	// loanFresh: nothing has been sent on the current loan yet, so the
	// loan's cleanup (loanCleanup) is still due.
	loanFresh bool
	// lexerDrift: the server reported a setting that changes how it splits
	// query strings; the connection is not lent again (see noteParam).
	lexerDrift bool
	// loanAdvanced: the context serial was advanced in the loan's last
	// write; loanBroken: something went wrong that makes the connection
	// unfit for another loan.
	loanAdvanced, loanBroken bool
	// snapshot is settings as they were when the current transaction
	// began; a rollback restores it.
	snapshot settings
	// lastEnd is the last transaction-ending command tag seen ("COMMIT" or
	// "ROLLBACK").
	lastEnd string

	// mu guards server and busy against the cancel path.
	mu     sync.Mutex
	server *pool.Conn
	busy   bool // a batch is in flight on server
	// cancelled: a cancel was forwarded for the current server connection;
	// it is drained before the connection goes back to the pool.
	cancelled chan struct{}

	sr msgReader // reader over server.R while a server is held

	// Prepared statements, by the client's name. Server-side names are
	// derived from the statement, so clients share them per connection.
	stmts         map[string]*preparedStmt
	unnamed       []byte // body of the client's last Parse of the unnamed statement
	unnamedChange settingChange
	// unnamedLocal: the client's unnamed statement is one the proxy answers
	// itself (DEALLOCATE), with its text; portalLocal, the portals bound
	// from it.
	unnamedLocal  string
	portalLocal   map[string]string
	portalKinds   map[string]stmtKind
	portalBegin   map[string]string // the text of BEGINs, by portal
	portalChanges map[string]settingChange

	// pending holds extended-protocol messages until Sync or Flush.
	pending []clientMsg
	// skipping: an extended-protocol error happened and the server discards
	// messages until the client's Sync.
	skipping bool
	// implicit: the proxy opened the transaction the server is in and must
	// COMMIT it at the client's Sync.
	implicit bool
	// framed: the server is in a framed transaction (ours or the client's).
	framed bool

	out []byte // client output being assembled for the current response
}

type clientMsg struct {
	typ  byte
	body []byte
}

// preparedStmt is a client's named statement.
type preparedStmt struct {
	serverName string
	parse      []byte // Parse body naming serverName, for re-preparing
	kind       stmtKind
	why        string
	change     settingChange
}

// serverState is the proxy's knowledge about a server connection.
type serverState struct {
	// prepared: statements the server holds, most recently used first.
	prepared map[string]*list.Element
	lru      *list.List // of *lruEntry
	// unnamedOwner is the session whose unnamed statement the server holds.
	unnamedOwner *session
	// batch counts batches; statements used by the current one are never
	// evicted (closing a statement closes its portals).
	batch int
	// pid and serial: the backend and its context serial, to which the
	// current loan's tenant proof is bound (serverconn.go). serial is 0 on
	// a connection without one: it carries no tenant context.
	pid    uint32
	serial int64
	// tenant is whose statements the connection holds, and deallocate
	// says the loan's cleanup must drop another tenant's (see lend).
	tenant     string
	deallocate bool
}

type lruEntry struct {
	name string
	used int // batch that last used it
}

func newServerState() *serverState {
	st := &serverState{}
	st.forgetAll()
	return st
}

// forgetAll forgets every statement the connection holds.
func (st *serverState) forgetAll() {
	st.prepared, st.lru = map[string]*list.Element{}, list.New()
	st.unnamedOwner = nil
}

// takeDeallocate reports whether the loan must drop another tenant's
// statements first (see session.lend), and marks it done.
func (st *serverState) takeDeallocate() bool {
	d := st.deallocate
	st.deallocate = false
	return d
}

func stateOf(c *pool.Conn) *serverState {
	if st, ok := c.State.(*serverState); ok {
		return st
	}
	st := newServerState()
	c.State = st
	return st
}

func (st *serverState) has(name string) bool { _, ok := st.prepared[name]; return ok }

// use marks name as prepared and used by the current batch.
func (st *serverState) use(name string) {
	if e, ok := st.prepared[name]; ok {
		e.Value.(*lruEntry).used = st.batch
		st.lru.MoveToFront(e)
		return
	}
	st.prepared[name] = st.lru.PushFront(&lruEntry{name: name, used: st.batch})
}

func (st *serverState) forget(name string) {
	if e, ok := st.prepared[name]; ok {
		st.lru.Remove(e)
		delete(st.prepared, name)
	}
}

// evictable returns the least recently used statement not used by the
// current batch, if the connection holds at least max.
func (st *serverState) evictable(max int) (string, bool) {
	if st.lru.Len() < max {
		return "", false
	}
	for e := st.lru.Back(); e != nil; e = e.Prev() {
		if ent := e.Value.(*lruEntry); ent.used != st.batch {
			return ent.name, true
		}
	}
	return "", false
}

// errServerLost ends a session after its server connection failed.
var errServerLost = errors.New("server connection lost")

// run serves the client until it terminates or fails.
func (s *session) run(ctx context.Context) error {
	defer s.releaseServer(false)
	for {
		typ, body, err := s.cr.next()
		if err != nil {
			var tooLong errTooLong
			if errors.As(err, &tooLong) {
				s.fatal(errProtocol("%v", err))
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
				return nil // the client went away
			}
			return err
		}
		switch typ {
		case 'Q':
			sql, _, ok := cstring(body)
			if !ok {
				s.fatal(errProtocol("malformed Query message"))
				return errors.New("malformed Query")
			}
			err = s.simpleQuery(ctx, sql)
		case 'P', 'B', 'D', 'E', 'C':
			s.pending = append(s.pending, clientMsg{typ, append([]byte(nil), body...)})
			continue
		case 'S', 'H':
			s.pending = append(s.pending, clientMsg{typ, nil})
			err = s.extended(ctx)
		case 'X':
			return nil
		case 'd', 'c', 'f':
			// CopyData/CopyDone/CopyFail outside COPY: Postgres ignores them.
			continue
		case 'F':
			err = s.replyError(&pgError{Code: "0A000", Message: "the FunctionCall protocol message is not supported by pgtenant",
				Hint: "Call the function with SELECT instead."})
		default:
			s.fatal(errProtocol("unexpected message type %q", typ))
			return fmt.Errorf("unexpected client message %q", typ)
		}
		if err != nil {
			if errors.Is(err, errBatchAborted) {
				continue // the client was answered and may go on
			}
			if errors.Is(err, errServerLost) {
				return nil
			}
			return err
		}
	}
}

// fatal sends a FATAL error and leaves closing to the caller.
func (s *session) fatal(e *pgError) {
	e.Severity = "FATAL"
	s.cw.Write(e.appendTo(nil))
	s.cw.Flush()
}

// replyError answers the client itself, without a server round trip.
func (s *session) replyError(e *pgError) error {
	s.out = e.appendTo(s.out[:0])
	s.out = appendReadyForQuery(s.out, s.txStatus())
	_, err := s.cw.Write(s.out)
	if err == nil {
		err = s.cw.Flush()
	}
	return err
}

func (s *session) txStatus() byte {
	if s.server != nil && s.framed && !s.implicit {
		return 'T'
	}
	return 'I'
}

// acquire makes sure the session holds a server connection.
func (s *session) acquire(ctx context.Context) error {
	if s.server != nil {
		return nil
	}
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		var ex *pool.ExhaustedError
		if errors.As(err, &ex) {
			s.srv.metrics.poolTimeouts.Add(1)
			s.log.Warn("no server connection", zap.Error(err))
			return &pgError{Code: "53300", Message: "pgtenant: " + ex.Error(),
				Hint: "Raise pool.max_size or acquire_timeout for this database, or reduce concurrent transactions."}
		}
		s.log.Error("cannot connect to the server", zap.Error(err))
		return &pgError{Code: "08006", Message: "pgtenant: cannot connect to the database server",
			Hint: "The server may be down; see pgtenant's log."}
	}
	s.mu.Lock()
	s.server = c
	s.mu.Unlock()
	s.lend(stateOf(c))
	s.sr = msgReader{r: c.R, buf: s.sr.buf}
	s.snapshot = s.settings.clone() // a transaction begins
	s.lastEnd = ""
	return nil
}

// acquireOrReply acquires a server connection for a Query; when there is
// none, the client has been answered with the error (ok is false).
func (s *session) acquireOrReply(ctx context.Context) (ok bool, err error) {
	if err := s.acquire(ctx); err != nil {
		var pe *pgError
		if errors.As(err, &pe) {
			return false, s.replyError(pe)
		}
		return false, err
	}
	return true, nil
}

// lend prepares the session for a loan of the server connection st: the
// tenant proof is made for this backend and its current context serial, so
// it is worth nothing once the loan is over (serverconn.go).
//
// Server-side statements are kept per tenant: a tenant can prepare or
// deallocate statements by any name through dynamic SQL, so statements a
// connection holds are trusted only by the tenant whose loans made them.
// When the connection comes from another tenant, the loan's cleanup
// deallocates them all.
func (s *session) lend(st *serverState) {
	s.loanFresh, s.lexerDrift, s.loanAdvanced, s.loanBroken = true, false, false, false
	if owner := s.statementOwner(); st.tenant != owner {
		st.tenant = owner
		st.forgetAll()
		st.deallocate = true
	}
	if s.signer == nil {
		return
	}
	b := append(s.proofSQL[:0], "; SET LOCAL erun.tenant_proof = '"...)
	b = s.signer.AppendProof(b, st.pid, st.serial)
	s.proofSQL = append(b, '\'')
	s.composeFrame()
}

// statementOwner is who may use the server statements this session makes.
func (s *session) statementOwner() string {
	return s.id.TenantID.String() + "/" + s.id.Role
}

// loanCleanup is what runs before anything else on a loan: closing what a
// previous client may have left open, and its statements when they belong
// to another tenant. Its first caller sends it.
func (s *session) loanCleanup() string {
	s.loanFresh = false
	if stateOf(s.server).takeDeallocate() {
		return closeCursors + "; DEALLOCATE ALL"
	}
	return closeCursors
}

// refreshFrame rebuilds the frame after the settings changed.
func (s *session) refreshFrame() {
	s.replay, s.nReplay = s.settings.replay()
	s.modes = s.settings.modes()
	s.composeFrame()
}

func (s *session) composeFrame() {
	n := s.nBase + s.nReplay
	if len(s.proofSQL) > 0 {
		n++
	}
	s.frames = frames{frame: s.baseFrame + string(s.proofSQL) + s.replay, n: n, modes: s.modes}
}

// applyChanges records setting changes sent in the current transaction.
func (s *session) applyChanges(changes []settingChange) {
	if len(changes) == 0 {
		return
	}
	for _, ch := range changes {
		s.settings.apply(ch)
	}
	s.refreshFrame()
}

// releaseServer gives the server connection back (or destroys it).
func (s *session) releaseServer(broken bool) {
	s.mu.Lock()
	c := s.server
	s.server = nil
	s.busy = false
	cancelled := s.cancelled
	s.cancelled = nil
	s.mu.Unlock()
	if c == nil {
		return
	}
	if broken || s.framed || s.skipping || s.lexerDrift || s.loanBroken {
		// Anything but a clean idle connection is closed, never reused.
		s.pool.Destroy(c)
		s.framed, s.implicit, s.skipping = false, false, false
		return
	}
	if cancelled != nil {
		// A cancel was sent for this connection: wait until the server has
		// delivered it, then let a round trip absorb it, so it can never
		// hit the next client's statement.
		<-cancelled
		if err := drainCancel(c); err != nil {
			s.pool.Destroy(c)
			return
		}
	}
	switch st := stateOf(c); {
	case st.serial == 0:
		// A connection without a serial (a pool without SetupServerConn)
		// still must not carry this client's session to the next one.
		if err := runQuiet(c, resetSession, nil); err != nil {
			s.pool.Destroy(c)
			return
		}
	case !s.loanAdvanced && !st.advance(c):
		s.log.Warn("destroying a server connection whose context serial did not advance as expected (a client discarded or moved it)")
		s.pool.Destroy(c)
		return
	}
	s.pool.Release(c)
}

// drainCancel runs an empty query; a pending cancel interrupts it (or was
// already discarded by the idle server) and is gone afterwards.
func drainCancel(c *pool.Conn) error {
	if _, err := c.W.Write([]byte{'Q', 0, 0, 0, 5, 0}); err != nil {
		return err
	}
	if err := c.W.Flush(); err != nil {
		return err
	}
	r := msgReader{r: c.R}
	for {
		typ, body, err := r.next()
		if err != nil {
			return err
		}
		if typ == 'Z' {
			if len(body) != 1 || body[0] != 'I' {
				return errors.New("server not idle after draining a cancel")
			}
			return nil
		}
	}
}

// simpleQuery handles a Query message.
func (s *session) simpleQuery(ctx context.Context, sql string) error {
	stmts := splitStatements(sql)
	if len(stmts) == 0 {
		// Postgres answers an empty query without a transaction.
		s.out = append(s.out[:0], 'I', 0, 0, 0, 4)
		s.out = appendReadyForQuery(s.out, s.txStatus())
		s.cw.Write(s.out)
		return s.cw.Flush()
	}
	if len(stmts) == 1 && stmts[0].kind == kindDeallocate {
		return s.deallocate(sql[stmts[0].start:stmts[0].end])
	}
	if len(stmts) == 1 && stmts[0].kind == kindCopyFrom {
		st, _, err := copyfrom.Parse(sql[stmts[0].start:stmts[0].end])
		if err != nil {
			return s.refuse(ctx, copyError(err))
		}
		return s.copyFrom(ctx, st)
	}
	var changes []settingChange
	for _, st := range stmts {
		ch, e := parseSetting(sql[st.start:st.end])
		if e == nil {
			e = refusal(st)
		}
		if ch.kind != changeNone {
			changes = append(changes, ch)
		}
		if e != nil {
			return s.refuse(ctx, e)
		}
	}
	if s.server != nil && s.lexerDrift && lexerSensitive(sql) {
		return s.refuse(ctx, &pgError{Code: "0A000",
			Message: "pgtenant cannot run query strings after standard_conforming_strings or client_encoding changed in this transaction",
			Hint:    "pgtenant splits statements as PostgreSQL does with standard_conforming_strings on and client_encoding UTF8; leave both as they are."})
	}
	// The loan comes first: the frame carries a proof made for it.
	if ok, err := s.acquireOrReply(ctx); !ok {
		return err
	}
	p := planSimple(sql, stmts, s.framed, s.frames)
	p.changes = changes
	for _, st := range stmts {
		if w := keywords(sql[st.start:st.end], 2); len(w) == 2 && w[0] == "SET" && w[1] == "TRANSACTION" {
			p.setsTransaction = true
		}
	}
	return s.runSimple(ctx, p)
}

// lexerSensitive reports whether standard_conforming_strings or an
// ASCII-compatible client_encoding could change how sql splits: only
// backslashes (in string literals) and bytes outside ASCII (in multibyte
// characters) are read differently.
func lexerSensitive(sql string) bool {
	for i := 0; i < len(sql); i++ {
		if sql[i] == '\\' || sql[i] >= 0x80 {
			return true
		}
	}
	return false
}

// refuse answers a Query with an error of the proxy's. Inside the client's
// transaction the server raises it, so that the transaction fails as the
// client was told.
func (s *session) refuse(ctx context.Context, e *pgError) error {
	if s.server != nil && s.framed {
		return s.runSimple(ctx, simplePlan{text: raiseSQL(e), injected: []bool{false}, quiet: []bool{false}, noTxWarn: []bool{false}, framed: true})
	}
	return s.replyError(e)
}

// deallocate answers a simple-protocol DEALLOCATE.
func (s *session) deallocate(stmt string) error {
	tag, e := s.applyDeallocate(stmt)
	if e != nil {
		return s.replyError(e)
	}
	s.out = appendMsg(s.out[:0], 'C', append([]byte(tag), 0))
	s.out = appendReadyForQuery(s.out, s.txStatus())
	s.cw.Write(s.out)
	return s.cw.Flush()
}

// applyDeallocate carries out DEALLOCATE [PREPARE] {name | ALL} on the
// client's own prepared statements and returns its command tag. Server
// statements are shared between clients on a connection and stay.
func (s *session) applyDeallocate(stmt string) (string, *pgError) {
	w := keywords(stmt, 3)
	name := afterWord(stmt, 1)
	if len(w) > 1 && w[1] == "PREPARE" {
		name = afterWord(stmt, 2)
	}
	if strings.EqualFold(name, "ALL") {
		s.stmts = map[string]*preparedStmt{}
		return "DEALLOCATE ALL", nil
	}
	name = strings.Trim(name, `"`)
	if _, ok := s.stmts[name]; !ok {
		return "", &pgError{Code: "26000", Message: "prepared statement " + quoteName(name) + " does not exist"}
	}
	delete(s.stmts, name)
	return "DEALLOCATE", nil
}

// refusal returns the error for statements pgtenant cannot run, or nil.
func refusal(st statement) *pgError {
	switch st.kind {
	case kindNoTxBlock:
		return &pgError{Code: "25001",
			Message: st.why + " cannot run through pgtenant: every statement runs inside a transaction block (transaction pooling with tenant context)",
			Hint:    "Run it on a direct connection to the database as its owner."}
	case kindSessionOnly:
		hint := st.hint
		if hint == "" {
			hint = "See the compatibility table in pgtenant's README."
		}
		return &pgError{Code: "0A000",
			Message: st.why + " is not supported in pgtenant's transaction mode: the server connection is shared between transactions",
			Hint:    hint}
	case kindDeallocate:
		return &pgError{Code: "0A000", Message: "DEALLOCATE must be sent on its own through pgtenant",
			Hint: "Send DEALLOCATE as a separate statement."}
	case kindCopyFrom:
		return &pgError{Code: "0A000", Message: "COPY FROM STDIN must be sent as a simple query of its own through pgtenant",
			Hint: "pgtenant turns COPY FROM into INSERTs under row-level security; send the COPY alone, as psql and the common drivers do."}
	case kindPrepareTxn:
		return &pgError{Code: "0A000",
			Message: "PREPARE TRANSACTION is not supported in pgtenant's transaction mode",
			Hint:    "Two-phase commit needs a session of its own; use a direct connection."}
	}
	return nil
}

// closeCursors closes what a previous client may have left on the server
// connection that outlives a transaction: a WITH HOLD cursor keeps rows
// read under that client's tenant. Temporary tables need no such step:
// tenants may not create them (see schema/database.sql).
//
// CLOSE ALL takes a snapshot, after which a transaction's isolation level
// can no longer be set. In a transaction the proxy opens it therefore
// follows the frame, which sets the client's default characteristics;
// otherwise it runs before the transaction, as a Query of its own; and
// when the client sets the isolation level itself (SET TRANSACTION) it
// prefixes the BEGIN in the same Query string, followed by a COMMIT that
// ends the implicit transaction CLOSE ALL ran in (its warning is dropped
// with the injected results), which costs a transaction, so only then.
const closeCursors = "CLOSE ALL"

func (s *session) runSimple(ctx context.Context, p simplePlan) error {
	if ok, err := s.acquireOrReply(ctx); !ok {
		return err
	}
	st := stateOf(s.server)
	var exps []expect
	w := s.server.W
	switch {
	case s.loanFresh && p.before != "" && p.setsTransaction:
		p.before = s.loanCleanup() + "; COMMIT; " + p.before
	case s.loanFresh && p.before != "":
		p.before += "; " + s.loanCleanup()
	case s.loanFresh:
		w.Write(appendQuery(nil, s.loanCleanup()))
		exps = append(exps, expect{kind: expQuery, injected: true})
	}
	if p.before != "" {
		w.Write(appendQuery(nil, p.before))
		exps = append(exps, expect{kind: expQuery, injected: true})
	}
	w.Write(appendQuery(nil, p.text))
	exps = append(exps, expect{kind: expQuery, stmtInjected: p.injected, stmtQuiet: p.quiet, stmtWarn: p.noTxWarn,
		sent: p.text, ins: p.ins, reportParams: len(p.changes) > 0})
	for _, a := range p.after {
		w.Write(appendQuery(nil, a))
		exps = append(exps, expect{kind: expQuery, injected: true})
	}
	if !p.framed && st.serial != 0 {
		w.Write(advanceMsg)
		exps = append(exps, advanceExpect)
	}
	st.unnamedOwner = nil // a simple Query destroys the unnamed statement
	s.applyChanges(p.changes)
	status, err := s.exchange(exps)
	if err != nil {
		return err
	}
	return s.finish(status)
}

// finish records the server's transaction status after a batch and gives
// the connection back when the transaction is over.
func (s *session) finish(status byte) error {
	switch status {
	case 'I':
		if s.lastEnd == "ROLLBACK" {
			// Session settings changed in a rolled-back transaction revert.
			s.settings = s.snapshot
			s.refreshFrame()
		}
		s.framed, s.implicit = false, false
		s.releaseServer(false)
	case 'T', 'E':
		// Still inside the client's transaction: keep the connection.
		if !s.framed {
			// The client opened a transaction we did not see coming (e.g. a
			// BEGIN whose frame was skipped). Never run unframed: end it.
			s.framed = true
		}
	}
	return nil
}

// extended handles the buffered extended-protocol messages at a Sync or
// Flush.
func (s *session) extended(ctx context.Context) error {
	msgs := s.pending
	s.pending = s.pending[:0]
	if s.server == nil && len(msgs) == 1 {
		// A lone Sync or Flush between transactions needs no server.
		if msgs[0].typ == 'S' {
			s.cw.Write(appendReadyForQuery(nil, 'I'))
		}
		return s.cw.Flush()
	}
	if err := s.acquire(ctx); err != nil {
		var pe *pgError
		if !errors.As(err, &pe) {
			return err
		}
		// Answer like the server would: the error, then skip to Sync.
		s.out = pe.appendTo(s.out[:0])
		if msgs[len(msgs)-1].typ == 'S' {
			s.out = appendReadyForQuery(s.out, s.txStatus())
		}
		s.cw.Write(s.out)
		return s.cw.Flush()
	}
	var b batch
	b.s = s
	b.st = stateOf(s.server)
	b.build(msgs)
	if msgs[len(msgs)-1].typ == 'S' && !s.framed && b.st.serial != 0 {
		b.buf = append(b.buf, advanceMsg...)
		b.exps = append(b.exps, advanceExpect)
	}
	if _, err := s.server.W.Write(b.buf); err != nil {
		return s.serverFailed(err)
	}
	status, err := s.exchange(b.exps)
	if err != nil {
		return err
	}
	if msgs[len(msgs)-1].typ == 'H' {
		// Flush: the unit of work goes on; keep the server connection.
		return s.cw.Flush()
	}
	return s.finish(status)
}

// serverStatementName names a statement on the server by what it is, so
// that clients executing the same statement share it.
func serverStatementName(query string, paramOIDs []byte) string {
	h := sha256.New()
	h.Write([]byte(query))
	h.Write([]byte{0})
	h.Write(paramOIDs)
	return "pgtenant_" + hex.EncodeToString(h.Sum(nil)[:12])
}

// parseBody encodes a Parse message body.
func parseBody(name, query string, oids []byte) []byte {
	b := make([]byte, 0, len(name)+len(query)+4+len(oids))
	b = append(append(b, name...), 0)
	b = append(append(b, query...), 0)
	return append(b, oids...)
}

// splitParse decodes a Parse body: name, query and the raw parameter type
// count and OIDs.
func splitParse(body []byte) (name, query string, oids []byte, ok bool) {
	name, rest, ok := cstring(body)
	if !ok {
		return
	}
	query, rest, ok = cstring(rest)
	if !ok {
		return
	}
	if len(rest) < 2 || len(rest) != 2+4*int(binary.BigEndian.Uint16(rest)) {
		return "", "", nil, false
	}
	return name, query, rest, true
}

func quoteName(n string) string { return strconv.Quote(n) }
