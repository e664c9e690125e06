package proxy

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Transaction framing: every statement a client runs executes inside a
// transaction that starts with the tenant frame
//
//	SET LOCAL ROLE r; SET LOCAL erun.tenant_id = '…'; SET LOCAL erun.tenant_proof = '…'
//
// and, when the client did not open the transaction itself, is wrapped in
// BEGIN … COMMIT by the proxy. All of it goes in the same write as the
// client's own messages: no extra round trip.

// insertion records text the proxy spliced into a client's query string,
// so that error positions can be mapped back.
type insertion struct{ at, n int } // byte offset in the client's text, bytes inserted

// simplePlan says how one client Query message is sent.
type simplePlan struct {
	before string // a Query sent before the client's (the opening frame), or ""
	text   string // the client's query, with frames spliced in after BEGIN / AND CHAIN
	ins    []insertion
	// injected and quiet have one entry per statement of text: the results
	// of injected statements are dropped, and so are the notices of quiet
	// ones (a client BEGIN inside the proxy's own wrapper would warn).
	injected []bool
	quiet    []bool
	// noTxWarn marks client COMMIT/ROLLBACKs that end the proxy's wrapper:
	// Postgres would have warned that no transaction was in progress.
	noTxWarn []bool
	after    []string // Queries sent after the client's: frames, then COMMIT
	// framed: after this message the server is inside a transaction the
	// client opened (the proxy keeps the connection).
	framed bool
	// changes the message makes to the session's settings.
	changes []settingChange
	// setsTransaction: the client sets its transaction's characteristics
	// itself (SET TRANSACTION), which must come before any snapshot.
	setsTransaction bool
}

// frames are what the proxy puts at the start of a client's transactions.
type frames struct {
	frame string // role, tenant, proof, the client's settings
	n     int    // statements in frame
	// modes apply the client's default transaction characteristics to the
	// transaction already begun (SET LOCAL transaction_isolation …), by
	// the keyword a BEGIN would give instead.
	modes []transactionMode
}

// opening is the frame of a transaction that takes the session's default
// characteristics.
func (f frames) opening() (string, int) { return f.forBegin("") }

// forBegin is the frame after a client's BEGIN: the characteristics the
// BEGIN does not give itself come from the session's defaults.
func (f frames) forBegin(begin string) (string, int) {
	if len(f.modes) == 0 {
		return f.frame, f.n
	}
	frame, n := f.frame, f.n
	words := " " + strings.Join(strings.Fields(strings.ToUpper(strings.ReplaceAll(begin, ",", " "))), " ") + " "
	for _, m := range f.modes {
		given := false
		for _, k := range m.keywords {
			given = given || strings.Contains(words, " "+k+" ")
		}
		if !given {
			frame += "; " + m.set
			n++
		}
	}
	return frame, n
}

// planSimple frames a Query. framed says whether the client is already in
// a transaction it opened.
func planSimple(sql string, stmts []statement, framed bool, f frames) simplePlan {
	opening, openingStmts := f.opening()
	p := simplePlan{}
	var b strings.Builder
	last := 0
	implicit := false // the proxy opened the transaction and must COMMIT it
	mark := func(injected, quiet bool) {
		p.injected = append(p.injected, injected)
		p.quiet = append(p.quiet, quiet)
		p.noTxWarn = append(p.noTxWarn, false)
	}
	splice := func(at int, s string, n int) {
		b.WriteString(sql[last:at])
		b.WriteString(s)
		last = at
		p.ins = append(p.ins, insertion{at: at, n: len(s)})
		for range n {
			mark(true, false)
		}
	}
	for i, st := range stmts {
		isLast := i == len(stmts)-1
		quiet, warn := false, false
		var frameAfter bool
		var frame string
		var frameStmts int
		if !framed {
			switch st.kind {
			case kindBegin:
				framed, frameAfter = true, true
				frame, frameStmts = f.forBegin(sql[st.start:st.end])
			case kindCommit, kindRollback, kindCommitChain, kindRollbackChain, kindEmpty:
				// Outside a block Postgres warns or errors by itself: pass through.
			default:
				if i == 0 {
					p.before = "BEGIN; " + opening
				} else {
					splice(st.start, "BEGIN; "+opening+"; ", 1+openingStmts)
				}
				framed, implicit = true, true
			}
		} else {
			switch st.kind {
			case kindBegin:
				quiet = implicit // our wrapper makes it warn; the client opened nothing
				implicit = false
			case kindCommit, kindRollback:
				warn = implicit
				framed, implicit = false, false
			case kindCommitChain, kindRollbackChain:
				frameAfter = true // the chained transaction starts without our SETs
				frame, frameStmts = f.frame, f.n
			}
		}
		mark(false, quiet)
		p.noTxWarn[len(p.noTxWarn)-1] = warn
		if frameAfter {
			if isLast {
				p.after = append(p.after, frame)
			} else {
				splice(st.end, " "+frame+";", frameStmts)
			}
		}
	}
	b.WriteString(sql[last:])
	if len(p.ins) > 0 {
		p.text = b.String()
		// Injected statements were marked where they were spliced, before
		// the client statement they precede or after the one they follow;
		// restore text order.
		p.injected, p.quiet, p.noTxWarn = orderMarks(sql, p)
	} else {
		p.text = sql
	}
	if implicit {
		p.after = append(p.after, "COMMIT")
	}
	p.framed = framed && !implicit
	return p
}

// orderMarks recomputes the per-statement marks in the order the
// statements appear in the rewritten text: everything inside an insertion
// is injected, client statements keep their flags.
func orderMarks(sql string, p simplePlan) (injected, quiet, warn []bool) {
	stmts := splitStatements(p.text)
	injected = make([]bool, len(stmts))
	quiet = make([]bool, len(stmts))
	warn = make([]bool, len(stmts))
	var clientQuiet, clientWarn []bool
	for i, inj := range p.injected {
		if !inj {
			clientQuiet = append(clientQuiet, p.quiet[i])
			clientWarn = append(clientWarn, p.noTxWarn[i])
		}
	}
	clientIdx := 0
	for k, st := range stmts {
		if insideInsertion(p.ins, st.start) {
			injected[k] = true
			continue
		}
		if clientIdx < len(clientQuiet) {
			quiet[k], warn[k] = clientQuiet[clientIdx], clientWarn[clientIdx]
		}
		clientIdx++
	}
	return injected, quiet, warn
}

// insideInsertion reports whether byte offset off of the rewritten text
// falls inside spliced text.
func insideInsertion(ins []insertion, off int) bool {
	shift := 0
	for _, in := range ins {
		start := in.at + shift
		if off >= start && off < start+in.n {
			return true
		}
		shift += in.n
	}
	return false
}

// mapPosition maps an error position (1-based, in characters) in the
// rewritten text back to the client's text; ok is false when it points
// into spliced text.
func mapPosition(sent string, ins []insertion, pos int) (int, bool) {
	if pos < 1 {
		return pos, true
	}
	// Character position -> byte offset in sent.
	off := 0
	for c := 1; c < pos && off < len(sent); c++ {
		_, size := utf8.DecodeRuneInString(sent[off:])
		off += size
	}
	shift := 0
	for _, in := range ins {
		start := in.at + shift
		if off < start {
			break
		}
		if off < start+in.n {
			return 0, false
		}
		shift += in.n
	}
	clientOff := off - shift
	// Byte offset in the client's text -> character position.
	return utf8.RuneCountInString(unshift(sent, ins)[:clientOff]) + 1, true
}

// unshift reconstructs the client's text from the rewritten one.
func unshift(sent string, ins []insertion) string {
	var b strings.Builder
	shift, last := 0, 0
	for _, in := range ins {
		start := in.at + shift
		b.WriteString(sent[last:start])
		last = start + in.n
		shift += in.n
	}
	b.WriteString(sent[last:])
	return b.String()
}

// frameSQL is the SET LOCAL list for an identity; the proof of each loan
// follows it (session.lend). Values are quoted as literals; tenant ids and
// proofs are hex, digits, colons and dashes, roles are checked identifiers,
// so nothing here comes from the client's text.
//
// The frame needs no RESET ALL: a previous client may have changed session
// settings on this server connection (set_config(…, false) inside a
// function cannot be seen by parsing), but every loan, and pgtenant's own
// set-up, ends with one outside any transaction (advanceContextSerial),
// and a connection whose loan did not end so is never lent again.
func frameSQL(role string, tenant string) (string, int) {
	if tenant == "" {
		return fmt.Sprintf("SET LOCAL ROLE %s", quoteIdent(role)), 1
	}
	return fmt.Sprintf("SET LOCAL ROLE %s; SET LOCAL erun.tenant_id = '%s'",
		quoteIdent(role), tenant), 2
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// raiseSQL is a statement that fails on the server with err: used to refuse
// a statement inside a client's transaction so that the transaction enters
// the failed state exactly as if Postgres had refused it.
func raiseSQL(err *pgError) string {
	// E'' strings read the same whatever standard_conforming_strings is.
	q := func(s string) string {
		return "E'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", "''") + "'"
	}
	return fmt.Sprintf("DO $pgtenant$ BEGIN RAISE EXCEPTION USING ERRCODE = %s, MESSAGE = %s, HINT = %s; END $pgtenant$",
		q(err.Code), q(err.Message), q(err.Hint))
}
