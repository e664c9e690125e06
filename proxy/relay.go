package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/pgtenant/pgtenant/pool"
)

// expect is one message the proxy sent to the server, and how to treat the
// responses it produces. The server answers messages strictly in order, so
// a queue of expectations tells which response belongs to what.
type expect struct {
	kind     expKind
	injected bool // the proxy's own message: its results never reach the client (its errors do)
	quiet    bool // drop notices (a client BEGIN inside the proxy's wrapper)
	// reportParams: the client changes session settings here, so the
	// server's ParameterStatus messages are news to it. Elsewhere they
	// only echo the frame's replay and the RESET ALL ending the previous
	// loan, and are dropped.
	reportParams bool
	// noTxWarn: a client COMMIT/ROLLBACK that ends the proxy's wrapper;
	// Postgres would warn that no transaction was in progress.
	noTxWarn bool

	// expQuery: per-statement marks of the sent text, and splices for
	// mapping error positions back to the client's text.
	stmtInjected []bool
	stmtQuiet    []bool
	stmtWarn     []bool
	sent         string
	ins          []insertion
	stmtIdx      int

	// expParse: the statement this Parse creates, forgotten if it fails or
	// is skipped.
	parseOf    *preparedStmt
	clientName string
	// stmt: the server statement a Bind or Describe uses, or that an
	// injected Close evicts.
	stmt string

	// expSynthetic: what the proxy answers in the server's place.
	synthetic []byte
	synthErr  bool
}

type expKind uint8

const (
	expQuery expKind = iota
	expParse
	expBind
	expDescribeStmt
	expDescribePortal
	expExecute
	expClose
	expSync
	expSynthetic
	// expAdvance: the context serial's advance, sent after the client's
	// last message of a loan; the client has its ReadyForQuery before it.
	expAdvance
)

func (e *expect) dropResult() bool {
	return e.injected || (e.kind == expQuery && e.stmtIdx < len(e.stmtInjected) && e.stmtInjected[e.stmtIdx])
}

func (e *expect) dropNotice() bool {
	if e.injected || e.quiet {
		return true
	}
	return e.kind == expQuery && e.stmtIdx < len(e.stmtInjected) &&
		(e.stmtInjected[e.stmtIdx] || e.stmtQuiet[e.stmtIdx])
}

// exchange sends what is buffered for the server and relays the responses
// until every expectation is met. It returns the last ReadyForQuery status
// (0 if the batch ended with Flush).
func (s *session) exchange(exps []expect) (byte, error) {
	s.mu.Lock()
	s.busy = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.busy = false
		s.mu.Unlock()
	}()
	if err := s.server.W.Flush(); err != nil {
		return 0, s.serverFailed(err)
	}
	var status byte
	errored, skip := false, s.skipping
	for len(exps) > 0 {
		e := &exps[0]
		if e.kind == expSynthetic {
			if !errored && !skip {
				s.cw.Write(e.synthetic)
				if e.synthErr {
					errored, skip = true, true
				}
			}
			exps = exps[1:]
			continue
		}
		if e.kind == expAdvance && s.sr.r.Buffered() == 0 {
			// The client has everything: let it go on while the server
			// answers the advance.
			if err := s.cw.Flush(); err != nil {
				return 0, err
			}
		}
		if skip && e.kind != expSync && e.kind != expAdvance {
			// The server discards messages until Sync after an error: what
			// they would have done to its statements did not happen.
			s.skipped(e)
			exps = exps[1:]
			continue
		}
		if s.sr.r.Buffered() == 0 {
			if err := s.cw.Flush(); err != nil {
				return 0, err
			}
		}
		typ, body, err := s.sr.next()
		if err != nil && e.kind == expAdvance {
			// The client has its answer; the connection just goes.
			s.log.Info("server connection lost after the transaction", zap.Error(err))
			s.loanBroken = true
			break
		}
		if err != nil {
			return 0, s.serverFailed(err)
		}
		if e.kind == expAdvance {
			if s.advanced(typ, body) {
				exps = exps[1:]
			}
			continue
		}
		switch typ {
		case 'N':
			if !e.dropNotice() && !errored {
				s.relay(typ, body)
			}
		case 'S': // ParameterStatus
			s.noteParam(body)
			if e.reportParams && !e.injected {
				s.relay(typ, body)
			}
		case 'A':
			// NotificationResponse: pgtenant refuses LISTEN, but a LISTEN
			// run through dynamic SQL stays on the server connection after
			// the loan, and its notifications would reach whichever
			// client holds the connection next. They are never relayed.
		case 'E':
			if sev := errorField(body, 'V'); sev == "FATAL" || sev == "PANIC" {
				return 0, s.serverFatal(body)
			}
			s.forgetFailedStatement(e, body)
			if !errored {
				s.relayError(e, body)
				errored = true
			}
			if e.kind == expQuery {
				e.stmtIdx = len(e.stmtInjected) // the rest of the string is skipped
			} else {
				exps = exps[1:]
				skip = true
			}
		case 'Z':
			if e.kind != expQuery && e.kind != expSync {
				return 0, s.desync(typ, e)
			}
			if len(body) != 1 {
				return 0, s.desync(typ, e)
			}
			status = body[0]
			if e.kind == expSync {
				skip = false
			}
			exps = exps[1:]
			if len(exps) == 0 || len(exps) == 1 && exps[0].kind == expAdvance {
				s.cw.Write(appendReadyForQuery(nil, status))
				if len(exps) == 1 && status != 'I' {
					// The loan goes on after all: the advance would
					// end its proof halfway through.
					s.loanBroken = true
				}
			}
		default:
			if typ == 'C' {
				s.noteEnd(body)
			}
			done, err := s.result(e, typ, body, errored)
			if err != nil {
				return 0, err
			}
			if done {
				exps = exps[1:]
			}
		}
	}
	s.skipping = skip
	return status, s.cw.Flush()
}

// noteParam watches the server's ParameterStatus for pool.LexerSettings:
// the pool pins them at start-up, but a client can still change them with
// set_config, which PostgreSQL reports.
// Once one drifts, the session refuses Query strings for the rest of the
// loan and the connection is closed after it (the RESET ALL that ends the
// loan would restore the value, but too late for text already on its way).
func (s *session) noteParam(body []byte) {
	name, rest, ok := cstring(body)
	if !ok {
		return
	}
	want, watched := pool.LexerSettings[name]
	if !watched {
		return
	}
	if value, _, ok := cstring(rest); !ok || !strings.EqualFold(value, want) {
		s.lexerDrift = true
	}
}

// advanced reads the server's answer to a pipelined advance of the context
// serial and reports when it is complete. Anything but exactly one step
// leaves the connection to be destroyed (see serverState.advance).
func (s *session) advanced(typ byte, body []byte) bool {
	st := stateOf(s.server)
	switch typ {
	case 'D':
		var want [20]byte
		if v, ok := singleValue(body); ok && string(v) == string(strconv.AppendInt(want[:0], st.serial+1, 10)) {
			st.serial++
			s.loanAdvanced = true
		} else {
			s.loanBroken = true
		}
	case 'E':
		s.loanBroken = true
	case 'Z':
		if len(body) != 1 || body[0] != 'I' || !s.loanAdvanced {
			s.loanBroken = true
		}
		return true
	}
	return false
}

// singleValue is the value of a DataRow with exactly one non-NULL column.
func singleValue(body []byte) ([]byte, bool) {
	if len(body) < 6 || binary.BigEndian.Uint16(body) != 1 {
		return nil, false
	}
	n := int(int32(binary.BigEndian.Uint32(body[2:])))
	if n < 0 || n != len(body)-6 {
		return nil, false
	}
	return body[6:], true
}

// result relays one result message and reports whether e is complete.
func (s *session) result(e *expect, typ byte, body []byte, errored bool) (bool, error) {
	drop := errored || e.dropResult()
	switch e.kind {
	case expQuery:
		switch typ {
		case 'C', 'I':
			if !drop {
				if e.stmtIdx < len(e.stmtWarn) && e.stmtWarn[e.stmtIdx] {
					s.cw.Write(noTransactionWarning)
				}
				s.relay(typ, body)
			}
			e.stmtIdx++
		case 'G':
			s.relay(typ, body)
			return false, s.copyIn()
		case 'W':
			return false, s.desync(typ, e)
		default:
			if !drop {
				s.relay(typ, body)
			}
		}
		return false, nil
	case expParse, expBind, expClose:
		if !drop {
			s.relay(typ, body)
		}
		return true, nil
	case expDescribeStmt:
		s.relay(typ, body)
		return typ != 't', nil // ParameterDescription, then RowDescription or NoData
	case expDescribePortal:
		s.relay(typ, body)
		return true, nil
	case expExecute:
		switch typ {
		case 'G':
			s.relay(typ, body)
			return false, s.copyIn()
		case 'C', 'I', 's':
			if e.noTxWarn {
				s.cw.Write(noTransactionWarning)
			}
			s.relay(typ, body)
			return true, nil
		default:
			s.relay(typ, body)
			return false, nil
		}
	}
	return false, s.desync(typ, e)
}

// noTransactionWarning is what Postgres says for COMMIT outside a block.
var noTransactionWarning = func() []byte {
	n := pgproto3NoticeWarning("25P01", "there is no transaction in progress")
	return n
}()

// noteEnd remembers whether the last transaction-ending command committed.
func (s *session) noteEnd(tag []byte) {
	switch string(tag) {
	case "COMMIT\x00":
		s.lastEnd = "COMMIT"
	case "ROLLBACK\x00":
		s.lastEnd = "ROLLBACK"
	}
}

func (s *session) relay(typ byte, body []byte) {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(body)+4))
	s.cw.Write(hdr[:])
	s.cw.Write(body)
}

// relayError sends an error, mapping its position back to the client's text.
func (s *session) relayError(e *expect, body []byte) {
	if e.kind == expQuery && len(e.ins) > 0 {
		if p, err := strconv.Atoi(errorField(body, 'P')); err == nil {
			if mapped, ok := mapPosition(e.sent, e.ins, p); ok {
				body = rewriteErrorField(body, 'P', strconv.Itoa(mapped))
			} else {
				body = rewriteErrorField(body, 'P', "")
			}
		}
	}
	if e.injected {
		s.log.Warn("the tenant frame failed", zap.String("sqlstate", errorField(body, 'C')),
			zap.String("message", errorField(body, 'M')))
	}
	s.relay('E', body)
}

// forgetFailedStatement keeps the statement maps true when the server
// refused a Parse, or no longer has a statement we thought it had.
func (s *session) forgetFailedStatement(e *expect, body []byte) {
	st := stateOf(s.server)
	if e.kind == expParse && e.parseOf != nil {
		st.forget(e.parseOf.serverName)
		if e.clientName != "" && s.stmts[e.clientName] == e.parseOf {
			delete(s.stmts, e.clientName)
		}
	}
	if errorField(body, 'C') == "26000" && e.stmt != "" {
		// The server lost a statement we thought it had: prepare it again
		// next time.
		st.forget(e.stmt)
	}
}

// skipped undoes the bookkeeping of a message the server discarded.
func (s *session) skipped(e *expect) {
	st := stateOf(s.server)
	switch {
	case e.kind == expParse && e.parseOf != nil:
		st.forget(e.parseOf.serverName)
		if e.clientName != "" && s.stmts[e.clientName] == e.parseOf {
			delete(s.stmts, e.clientName)
		}
	case e.kind == expClose && e.injected && e.stmt != "":
		st.use(e.stmt) // the eviction did not happen: the server still has it
	}
}

// copyIn relays COPY FROM STDIN data from the client until it ends.
func (s *session) copyIn() error {
	if err := s.cw.Flush(); err != nil {
		return err
	}
	w := s.server.W
	for {
		typ, body, err := s.cr.next()
		if err != nil {
			// The client vanished mid-COPY: abort it on the server.
			w.Write(appendMsg(nil, 'f', append([]byte("client disconnected during COPY"), 0)))
			w.Flush()
			return errServerLost
		}
		switch typ {
		case 'd':
			w.Write(appendMsg(nil, typ, body))
		case 'c', 'f':
			w.Write(appendMsg(nil, typ, body))
			if err := w.Flush(); err != nil {
				return s.serverFailed(err)
			}
			return nil
		case 'H', 'S':
			// Ignored by the server during COPY IN.
		default:
			w.Write(appendMsg(nil, 'f', append([]byte(fmt.Sprintf("unexpected message %q during COPY", typ)), 0)))
			w.Flush()
			return nil
		}
	}
}

// serverFailed handles a server connection that broke mid-request.
func (s *session) serverFailed(cause error) error {
	s.log.Warn("server connection lost", zap.Error(cause))
	return s.serverGone(&pgError{Code: "08006",
		Message: "pgtenant: the connection to the database server was lost; the transaction did not complete (if it was committing, its outcome is unknown)"})
}

// serverFatal handles a FATAL error from the server (for example
// pg_terminate_backend): the server connection is gone.
func (s *session) serverFatal(body []byte) error {
	s.log.Warn("server connection terminated", zap.String("sqlstate", errorField(body, 'C')), zap.String("message", errorField(body, 'M')))
	return s.serverGone(&pgError{Code: errorField(body, 'C'),
		Message: errorField(body, 'M') + " (pgtenant: the transaction was rolled back)"})
}

// serverGone destroys the server connection. A client inside a transaction
// it opened has lost it: it gets a FATAL error and is disconnected, so it
// can never carry on as if the transaction were still open. Otherwise the
// client gets an error and may continue.
func (s *session) serverGone(e *pgError) error {
	explicit := s.framed && !s.implicit
	s.releaseServer(true)
	s.framed, s.implicit, s.skipping = false, false, false
	if explicit {
		s.fatal(e)
		return errServerLost
	}
	s.out = e.appendTo(s.out[:0])
	s.out = appendReadyForQuery(s.out, 'I')
	s.cw.Write(s.out)
	if err := s.cw.Flush(); err != nil {
		return err
	}
	return errBatchAborted
}

// errBatchAborted: the batch ended early; the client has been answered.
var errBatchAborted = errors.New("batch aborted")

func (s *session) desync(typ byte, e *expect) error {
	s.log.Error("protocol desynchronised with the server", zap.String("message", string(typ)), zap.Int("expected", int(e.kind)))
	return s.serverGone(&pgError{Code: "08P01", Message: "pgtenant: unexpected response from the database server; the connection was reset"})
}
