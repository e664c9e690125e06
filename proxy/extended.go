package proxy

import "fmt"

// batch turns one run of extended-protocol messages (up to Sync or Flush)
// into what is written to the server, plus the expectations for relaying.
type batch struct {
	s    *session
	st   *serverState
	buf  []byte
	exps []expect
	cut  bool // a synthetic error ended the batch early; only Sync follows
}

func (b *batch) send(typ byte, body []byte, e expect) {
	b.buf = appendMsg(b.buf, typ, body)
	b.exps = append(b.exps, e)
}

func (b *batch) synth(msg []byte, isErr bool) {
	b.exps = append(b.exps, expect{kind: expSynthetic, synthetic: msg, synthErr: isErr})
	if isErr {
		b.cut = true
	}
}

func (b *batch) fail(e *pgError) { b.synth(e.appendTo(nil), true) }

func (b *batch) query(sql string) {
	b.buf = appendQuery(b.buf, sql)
	b.exps = append(b.exps, expect{kind: expQuery, injected: true})
	b.st.unnamedOwner = nil // a simple Query destroys the unnamed statement
}

func (b *batch) build(msgs []clientMsg) {
	s := b.s
	b.st.batch++
	if s.skipping {
		// An earlier error: the server discards everything until Sync.
		for _, m := range msgs {
			if m.typ == 'S' {
				b.sync()
			}
		}
		return
	}
	if !s.framed {
		first := b.firstExecution(msgs)
		switch first {
		case kindEmpty:
			// Nothing is executed (Parse/Describe only): no transaction;
			// the cleanup waits for the first execution, unless statements
			// of another tenant must go before these Parses.
			if s.loanFresh && b.st.takeDeallocate() {
				b.query("DEALLOCATE ALL")
			}
		case kindBegin, kindCommit, kindRollback, kindCommitChain, kindRollbackChain:
			// The client opens (or ends) the transaction itself: the frame
			// follows its BEGIN.
			if s.loanFresh {
				b.query(s.loanCleanup())
			}
		default:
			opening, _ := s.frames.opening()
			cleanup := ""
			if s.loanFresh {
				cleanup = "; " + s.loanCleanup() // after the frame (see closeCursors)
			}
			b.query("BEGIN; " + opening + cleanup)
			s.framed, s.implicit = true, true
		}
	}
	for _, m := range msgs {
		if b.cut && m.typ != 'S' {
			continue
		}
		switch m.typ {
		case 'P':
			b.parse(m.body)
		case 'B':
			b.bind(m.body)
		case 'D':
			b.describe(m.body)
		case 'E':
			b.execute(m.body)
		case 'C':
			b.close(m.body)
		case 'S':
			b.sync()
		case 'H':
			b.buf = appendMsg(b.buf, 'H', nil)
		}
	}
}

// firstExecution is the kind of the first statement the batch executes, or
// kindEmpty if it executes none (Parse/Describe only).
func (b *batch) firstExecution(msgs []clientMsg) stmtKind {
	portals := map[string]stmtKind{}
	unnamed := stmtKind(kindEmpty)
	if b.s.unnamed != nil {
		unnamed = kindOf(b.s.unnamed)
	}
	for _, m := range msgs {
		switch m.typ {
		case 'P':
			if name, _, _, ok := splitParse(m.body); ok && name == "" {
				unnamed = kindOf(m.body)
			}
		case 'B':
			portal, rest, ok := cstring(m.body)
			if !ok {
				return kindOther
			}
			stmt, _, _ := cstring(rest)
			if stmt == "" {
				portals[portal] = unnamed
			} else if ps := b.s.stmts[stmt]; ps != nil {
				portals[portal] = ps.kind
			} else {
				// A statement Parsed earlier in this batch.
				portals[portal] = b.kindInBatch(msgs, stmt)
			}
		case 'E':
			portal, _, _ := cstring(m.body)
			if k, ok := portals[portal]; ok {
				return k
			}
			if k, ok := b.s.portalKinds[portal]; ok {
				return k
			}
			return kindOther
		}
	}
	return kindEmpty
}

func (b *batch) kindInBatch(msgs []clientMsg, name string) stmtKind {
	for _, m := range msgs {
		if m.typ == 'P' {
			if n, _, _, ok := splitParse(m.body); ok && n == name {
				return kindOf(m.body)
			}
		}
	}
	return kindOther
}

func kindOf(parse []byte) stmtKind {
	_, query, _, ok := splitParse(parse)
	if !ok {
		return kindOther
	}
	stmts := splitStatements(query)
	if len(stmts) == 0 {
		return kindEmpty
	}
	return stmts[0].kind
}

func (b *batch) parse(body []byte) {
	s := b.s
	name, query, oids, ok := splitParse(body)
	if !ok {
		b.fail(errProtocol("malformed Parse message"))
		return
	}
	kind, why := kindOther, ""
	var change settingChange
	if stmts := splitStatements(query); len(stmts) > 0 {
		kind, why = stmts[0].kind, stmts[0].why
		ch, e := parseSetting(query[stmts[0].start:stmts[0].end])
		if e == nil && stmts[0].kind != kindDeallocate {
			e = refusal(stmts[0])
		}
		if e != nil {
			b.fail(e)
			return
		}
		change = ch
	}
	if kind == kindDeallocate {
		// psycopg 3 sends DEALLOCATE ALL this way after a rollback.
		if name != "" {
			b.fail(&pgError{Code: "0A000", Message: "pgtenant answers DEALLOCATE itself and cannot prepare it as a named statement"})
			return
		}
		s.unnamedLocal = query
		b.synth([]byte{'1', 0, 0, 0, 4}, false) // ParseComplete
		return
	}
	if name == "" {
		s.unnamedLocal = ""
		s.unnamedChange = change
		s.unnamed = append(s.unnamed[:0], body...)
		b.st.unnamedOwner = s
		b.send('P', body, expect{kind: expParse})
		return
	}
	if _, exists := s.stmts[name]; exists {
		b.fail(&pgError{Code: "42P05", Message: "prepared statement " + quoteName(name) + " already exists"})
		return
	}
	if max := s.srv.opts.MaxClientStatements; len(s.stmts) >= max {
		b.fail(&pgError{Code: "53400", Message: fmt.Sprintf("pgtenant: this client already has %d prepared statements, the most allowed", max),
			Hint: "Close or DEALLOCATE unused statements, or raise prepared_statements.max_per_client."})
		return
	}
	server := serverStatementName(query, oids)
	ps := &preparedStmt{serverName: server, parse: parseBody(server, query, oids), kind: kind, why: why, change: change}
	s.stmts[name] = ps
	if b.st.has(server) {
		b.st.use(server)
		b.synth([]byte{'1', 0, 0, 0, 4}, false) // ParseComplete
		return
	}
	b.makeRoom()
	b.st.use(server)
	b.send('P', ps.parse, expect{kind: expParse, parseOf: ps, clientName: name})
}

// ensure prepares ps on this server connection if it lacks it.
func (b *batch) ensure(ps *preparedStmt) {
	if b.st.has(ps.serverName) {
		b.st.use(ps.serverName)
		return
	}
	b.makeRoom()
	b.st.use(ps.serverName)
	b.send('P', ps.parse, expect{kind: expParse, injected: true, parseOf: ps})
}

// makeRoom closes the least recently used statement when the connection
// holds as many as allowed, in the same write.
func (b *batch) makeRoom() {
	name, ok := b.st.evictable(b.s.srv.opts.MaxServerStatements)
	if !ok {
		return
	}
	b.st.forget(name)
	b.send('C', append(append([]byte{'S'}, name...), 0), expect{kind: expClose, injected: true, stmt: name})
}

// ensureUnnamed re-prepares the client's unnamed statement if the server's
// unnamed statement is not (or no longer) the client's.
func (b *batch) ensureUnnamed() {
	if b.st.unnamedOwner == b.s || b.s.unnamed == nil {
		return
	}
	b.st.unnamedOwner = b.s
	b.send('P', b.s.unnamed, expect{kind: expParse, injected: true})
}

// lookup resolves a client statement name, failing the batch if unknown.
func (b *batch) lookup(name string) *preparedStmt {
	ps := b.s.stmts[name]
	if ps == nil {
		b.fail(&pgError{Code: "26000", Message: "prepared statement " + quoteName(name) + " does not exist"})
	}
	return ps
}

func (b *batch) bind(body []byte) {
	portal, rest, ok := cstring(body)
	if !ok {
		b.fail(errProtocol("malformed Bind message"))
		return
	}
	stmt, params, ok := cstring(rest)
	if !ok {
		b.fail(errProtocol("malformed Bind message"))
		return
	}
	if stmt == "" && b.s.unnamedLocal != "" {
		b.s.portalLocal[portal] = b.s.unnamedLocal
		b.synth([]byte{'2', 0, 0, 0, 4}, false) // BindComplete
		return
	}
	if stmt == "" {
		b.ensureUnnamed()
		kind := kindOf(b.s.unnamed)
		b.s.portalKinds[portal] = kind
		b.s.noteBegin(portal, kind, b.s.unnamed)
		b.s.portalChanges[portal] = b.s.unnamedChange
		b.send('B', body, expect{kind: expBind})
		return
	}
	ps := b.lookup(stmt)
	if ps == nil {
		return
	}
	b.ensure(ps)
	b.s.portalKinds[portal] = ps.kind
	b.s.noteBegin(portal, ps.kind, ps.parse)
	b.s.portalChanges[portal] = ps.change
	out := make([]byte, 0, len(portal)+len(ps.serverName)+2+len(params))
	out = append(append(out, portal...), 0)
	out = append(append(out, ps.serverName...), 0)
	b.send('B', append(out, params...), expect{kind: expBind, stmt: ps.serverName})
}

// splitTarget decodes the body of Describe and Close: 'S' (statement) or
// 'P' (portal), then a name.
func splitTarget(body []byte) (byte, string, bool) {
	if len(body) < 2 || (body[0] != 'S' && body[0] != 'P') {
		return 0, "", false
	}
	name, _, ok := cstring(body[1:])
	return body[0], name, ok
}

func (b *batch) describe(body []byte) {
	target, name, ok := splitTarget(body)
	if !ok {
		b.fail(errProtocol("malformed Describe message"))
		return
	}
	if target == 'P' {
		if _, local := b.s.portalLocal[name]; local {
			b.synth([]byte{'n', 0, 0, 0, 4}, false) // NoData
			return
		}
		b.send('D', body, expect{kind: expDescribePortal})
		return
	}
	if name == "" && b.s.unnamedLocal != "" {
		// ParameterDescription (no parameters), then NoData.
		b.synth([]byte{'t', 0, 0, 0, 6, 0, 0, 'n', 0, 0, 0, 4}, false)
		return
	}
	if name == "" {
		b.ensureUnnamed()
		b.send('D', body, expect{kind: expDescribeStmt})
		return
	}
	ps := b.lookup(name)
	if ps == nil {
		return
	}
	b.ensure(ps)
	b.send('D', append(append([]byte{'S'}, ps.serverName...), 0), expect{kind: expDescribeStmt, stmt: ps.serverName})
}

func (b *batch) execute(body []byte) {
	s := b.s
	portal, rest, ok := cstring(body)
	if !ok || len(rest) != 4 {
		b.fail(errProtocol("malformed Execute message"))
		return
	}
	if stmt, local := s.portalLocal[portal]; local {
		delete(s.portalLocal, portal)
		tag, e := s.applyDeallocate(stmt)
		if e != nil {
			b.fail(e)
			return
		}
		b.synth(appendMsg(nil, 'C', append([]byte(tag), 0)), false)
		return
	}
	kind, known := s.portalKinds[portal]
	if !known {
		kind = kindOther
	}
	e := expect{kind: expExecute}
	frameAfter := false
	var frame string
	if !s.framed {
		switch kind {
		case kindBegin:
			s.framed, frameAfter = true, true
			frame, _ = s.frames.forBegin(s.portalBegin[portal])
		case kindCommit, kindRollback, kindCommitChain, kindRollbackChain, kindEmpty:
		default:
			// The batch ended a transaction and goes on running statements
			// before its Sync: the frame cannot be placed without disturbing
			// the client's unnamed statement and portal.
			b.fail(&pgError{Code: "0A000",
				Message: "pgtenant cannot run statements after COMMIT or ROLLBACK in the same pipeline before Sync",
				Hint:    "Send Sync after ending the transaction."})
			return
		}
	} else {
		switch kind {
		case kindBegin:
			e.quiet = s.implicit
			s.implicit = false
		case kindCommit, kindRollback:
			e.noTxWarn = s.implicit
			s.framed, s.implicit = false, false
		case kindCommitChain, kindRollbackChain:
			frameAfter = true
			frame = s.frames.frame
		}
	}
	if ch := s.portalChanges[portal]; ch.kind != changeNone {
		e.reportParams = true
		s.applyChanges([]settingChange{ch})
	}
	b.send('E', body, e)
	if frameAfter {
		b.query(frame)
	}
}

// noteBegin remembers the text of a BEGIN bound to portal: the modes it
// gives decide the frame that follows it.
func (s *session) noteBegin(portal string, kind stmtKind, parse []byte) {
	if kind != kindBegin {
		if len(s.portalBegin) > 0 {
			delete(s.portalBegin, portal)
		}
		return
	}
	_, query, _, _ := splitParse(parse)
	s.portalBegin[portal] = query
}

func (b *batch) close(body []byte) {
	target, name, ok := splitTarget(body)
	if !ok {
		b.fail(errProtocol("malformed Close message"))
		return
	}
	if target == 'S' && name != "" {
		// The server statement stays: other clients may share it.
		delete(b.s.stmts, name)
		b.synth([]byte{'3', 0, 0, 0, 4}, false) // CloseComplete
		return
	}
	if target == 'P' {
		delete(b.s.portalKinds, name)
		delete(b.s.portalChanges, name)
		if _, local := b.s.portalLocal[name]; local {
			delete(b.s.portalLocal, name)
			b.synth([]byte{'3', 0, 0, 0, 4}, false) // CloseComplete
			return
		}
	}
	b.send('C', body, expect{kind: expClose})
}

func (b *batch) sync() {
	s := b.s
	b.send('S', nil, expect{kind: expSync})
	b.cut = false
	if s.implicit {
		b.query("COMMIT")
		s.framed, s.implicit = false, false
	}
	s.portalKinds = map[string]stmtKind{}
	s.portalChanges = map[string]settingChange{}
	s.portalLocal = map[string]string{}
}
