package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pgtenant/pgtenant/proxy/copyfrom"
)

// COPY … FROM STDIN under row-level security.
//
// PostgreSQL refuses COPY FROM on a table with RLS, for every role that
// RLS applies to. pgtenant therefore answers the COPY itself: it reads the
// client's data (text, csv or binary, with the statement's options) and
// inserts the rows with multi-row INSERTs in the client's transaction, as
// the client's role and tenant. RLS checks every row as for any INSERT:
// columns the client leaves out take their defaults (tenant_id the
// client's tenant), and another tenant's tenant_id is refused.
//
// The INSERTs are pipelined: a goroutine reads the server's answers while
// the session keeps decoding and writing, so the data streams through
// without a round trip per batch.

const (
	// copyBatchBytes bounds the data of one INSERT, and so the memory a
	// COPY holds.
	copyBatchBytes = 1 << 20
	// copyBatchRows is the most rows one INSERT carries.
	copyBatchRows = 1000
	// maxParams is the protocol's limit on a statement's parameters.
	maxParams = 65535
)

// copyColumnsSQL lists the columns COPY reads when it has no column list:
// all but dropped and generated ones, in order.
const copyColumnsSQL = `SELECT a.attname::pg_catalog.text, pg_catalog.quote_ident(a.attname)
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = $1::pg_catalog.text::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum`

// copyFrom runs a client's COPY … FROM STDIN.
func (s *session) copyFrom(ctx context.Context, st *copyfrom.Statement) error {
	if ok, err := s.acquireOrReply(ctx); !ok {
		return err
	}
	srv := stateOf(s.server)
	srv.unnamedOwner = nil // the INSERT takes the unnamed statement
	c := &copyRun{s: s, st: st, implicit: !s.framed}

	// Open the transaction (if the client has none) and find the columns.
	var out []byte
	if s.loanFresh {
		out = appendQuery(out, s.loanCleanup())
		c.pendingZ++
	}
	if c.implicit {
		opening, _ := s.frames.opening()
		out = appendQuery(out, "BEGIN; "+opening)
		c.pendingZ++
		s.framed, s.implicit = true, true
	}
	names, idents := st.Names, st.Columns
	if st.Columns == nil {
		out = appendMsg(out, 'P', parseBody("", copyColumnsSQL, []byte{0, 1, 0, 0, 0, 25}))
		out = appendMsg(out, 'B', bindText("", []string{st.Table}))
		out = appendMsg(out, 'E', []byte{0, 0, 0, 0, 0})
		out = appendMsg(out, 'S', nil)
		c.pendingZ++
		rows, e, err := c.roundTrip(out)
		if err != nil {
			return err
		}
		if e != nil {
			return c.fail(e, nil)
		}
		names, idents = make([]string, len(rows)), make([]string, len(rows))
		for i, r := range rows {
			names[i], idents[i] = r[0], r[1]
		}
		out = out[:0]
	}
	dec, derr := copyfrom.NewDecoder(st.Options, names)
	if derr != nil {
		return c.fail(nil, copyError(derr))
	}
	c.ncols = len(names)
	c.perInsert = copyBatchRows
	if c.ncols > 0 {
		c.perInsert = min(copyBatchRows, maxParams/c.ncols)
	} else {
		c.perInsert = 1
	}
	c.insertPrefix = "INSERT INTO " + st.Table
	if c.ncols > 0 {
		c.insertPrefix += " (" + strings.Join(idents, ", ") + ") OVERRIDING SYSTEM VALUE VALUES "
	}
	// Prepare the INSERT before telling the client to send data, so that
	// a missing table or column or a missing privilege fails the COPY
	// before it starts, as in PostgreSQL.
	c.parseInsert(&out, c.perInsert)
	out = appendMsg(out, 'S', nil)
	c.pendingZ++
	if _, e, err := c.roundTrip(out); err != nil {
		return err
	} else if e != nil {
		return c.fail(e, nil)
	}
	return c.stream(dec)
}

// copyRun is one COPY FROM in progress.
type copyRun struct {
	s        *session
	st       *copyfrom.Statement
	implicit bool // the proxy opened the transaction
	pendingZ int  // ReadyForQuery messages the next roundTrip waits for

	ncols        int
	perInsert    int    // rows of the prepared INSERT
	prepared     int    // rows of the INSERT the unnamed statement holds
	insertPrefix string // INSERT INTO t (cols) … VALUES

	// firstLine[i] is the first data line of the i-th INSERT sent, to say
	// where an error is.
	firstLine []int64
}

// parseInsert appends a Parse of the INSERT for n rows.
func (c *copyRun) parseInsert(out *[]byte, n int) {
	var b strings.Builder
	b.WriteString(c.insertPrefix)
	if c.ncols == 0 {
		b.WriteString(" DEFAULT VALUES")
	}
	p := 1
	for r := range n {
		if c.ncols == 0 {
			break
		}
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for k := range c.ncols {
			if k > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(p))
			p++
		}
		b.WriteByte(')')
	}
	*out = appendMsg(*out, 'P', parseBody("", b.String(), []byte{0, 0}))
	c.prepared = n
}

// roundTrip sends out and reads until pendingZ ReadyForQuery messages
// arrived. It returns the data rows of the results, and the first error.
func (c *copyRun) roundTrip(out []byte) ([][]string, []byte, error) {
	s := c.s
	if _, err := s.server.W.Write(out); err != nil {
		return nil, nil, s.serverFailed(err)
	}
	if err := s.server.W.Flush(); err != nil {
		return nil, nil, s.serverFailed(err)
	}
	var rows [][]string
	var firstErr []byte
	for ; c.pendingZ > 0; c.pendingZ-- {
		for {
			typ, body, err := s.sr.next()
			if err != nil {
				return nil, nil, s.serverFailed(err)
			}
			if typ == 'Z' {
				break
			}
			switch typ {
			case 'E':
				if sev := errorField(body, 'V'); sev == "FATAL" || sev == "PANIC" {
					return nil, nil, s.serverFatal(body)
				}
				if firstErr == nil {
					firstErr = append([]byte(nil), body...)
				}
			case 'D':
				rows = append(rows, dataRow(body))
			}
		}
	}
	return rows, firstErr, nil
}

// dataRow decodes a DataRow of text values.
func dataRow(body []byte) []string {
	if len(body) < 2 {
		return nil
	}
	n := int(binary.BigEndian.Uint16(body))
	body = body[2:]
	out := make([]string, 0, n)
	for range n {
		if len(body) < 4 {
			break
		}
		l := int(int32(binary.BigEndian.Uint32(body)))
		body = body[4:]
		if l < 0 || l > len(body) {
			out = append(out, "")
			continue
		}
		out = append(out, string(body[:l]))
		body = body[l:]
	}
	return out
}

// bindText encodes a Bind of the unnamed portal with text parameters.
func bindText(stmt string, params []string) []byte {
	b := append([]byte{0}, stmt...)
	b = append(b, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(params)))
	for _, p := range params {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return append(b, 0, 0)
}

// copyResult is what the server answered to the INSERTs.
type copyResult struct {
	rows    int64
	inserts int    // INSERTs that completed
	errBody []byte // the first error
	notices [][]byte
	ioErr   error
	fatal   []byte
}

// stream tells the client to send its data, and inserts it.
func (c *copyRun) stream(dec *copyfrom.Decoder) error {
	s := c.s
	format := byte(0)
	if c.st.Format == copyfrom.Binary {
		format = 1
	}
	resp := []byte{format, byte(c.ncols >> 8), byte(c.ncols)}
	for range c.ncols {
		resp = append(resp, 0, format)
	}
	s.cw.Write(appendMsg(nil, 'G', resp))
	if err := s.cw.Flush(); err != nil {
		return err
	}

	s.mu.Lock()
	s.busy = true // a cancel now reaches the INSERTs
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.busy = false
		s.mu.Unlock()
	}()
	errSeen := make(chan struct{})
	done := make(chan copyResult, 1)
	go readInsertResults(s.sr, errSeen, done)

	w := s.server.W
	var batch copyfrom.Batch
	var out []byte
	var decodeErr *pgError
	var failMsg string
	clientFailed, clientGone := false, false
	send := func() {
		if batch.Rows == 0 {
			return
		}
		if batch.Rows != c.prepared {
			out = out[:0]
			c.parseInsert(&out, batch.Rows)
			w.Write(out)
		}
		out = c.appendBind(out[:0], &batch, format)
		out = appendMsg(out, 'E', []byte{0, 0, 0, 0, 0})
		w.Write(out)
		c.firstLine = append(c.firstLine, dec.Line()-int64(batch.Rows)+1)
		batch.Reset()
	}
	full := func() bool { return batch.Rows >= c.perInsert || len(batch.Data) >= copyBatchBytes }
	decode := func(final bool) {
		for decodeErr == nil {
			ok, err := dec.Next(&batch, final)
			if err != nil {
				decodeErr = copyError(err)
				decodeErr.Where = c.where(dec.Line())
				return
			}
			if !ok {
				return
			}
			if full() {
				send()
			}
		}
	}
loop:
	for {
		select {
		case <-errSeen:
			break loop
		default:
		}
		typ, body, err := s.cr.next()
		if err != nil {
			clientGone = true
			break
		}
		switch typ {
		case 'd':
			dec.Write(body)
			decode(false)
			if decodeErr != nil {
				break loop
			}
		case 'c':
			decode(true)
			if decodeErr == nil {
				if err := dec.Finish(); err != nil {
					decodeErr = copyError(err)
					decodeErr.Where = c.where(dec.Line())
				}
			}
			if decodeErr == nil {
				send()
			}
			break loop
		case 'f':
			failMsg, _, _ = cstring(body)
			clientFailed = true
			break loop
		case 'H', 'S':
			// PostgreSQL ignores these during COPY IN.
		default:
			decodeErr = &pgError{Code: "08P01", Message: fmt.Sprintf("unexpected message type 0x%02X during COPY from stdin", typ)}
			break loop
		}
	}

	// End the pipeline; the server answers it with ReadyForQuery.
	w.Write(appendMsg(nil, 'S', nil))
	ioErr := w.Flush()
	res := <-done
	if ioErr == nil {
		ioErr = res.ioErr
	}
	switch {
	case res.fatal != nil:
		return s.serverFatal(res.fatal)
	case ioErr != nil:
		return s.serverFailed(ioErr)
	case clientGone:
		s.log.Info("client disconnected during COPY FROM")
		s.releaseServer(true)
		return errServerLost
	}
	for _, n := range res.notices {
		s.relay('N', n)
	}
	switch {
	case res.errBody != nil:
		body := res.errBody
		if res.inserts < len(c.firstLine) {
			body = rewriteErrorField(body, 'W', c.whereRange(res.inserts, dec.Line()))
		}
		return c.fail(body, nil)
	case decodeErr != nil:
		return c.fail(nil, decodeErr)
	case clientFailed:
		return c.fail(nil, &pgError{Code: "57014", Message: "COPY from stdin failed: " + failMsg})
	}
	return c.succeed(res.rows)
}

// succeed commits the proxy's transaction, if it opened one, and reports
// the rows copied.
func (c *copyRun) succeed(rows int64) error {
	s := c.s
	if c.implicit {
		c.pendingZ = 1
		_, e, err := c.roundTrip(appendQuery(nil, "COMMIT"))
		if err != nil {
			return err
		}
		if e != nil {
			// The commit failed (a deferred constraint, say): nothing was
			// copied.
			s.out = appendMsg(s.out[:0], 'E', e)
			return c.answer('I')
		}
	}
	s.out = appendMsg(s.out[:0], 'C', []byte("COPY "+strconv.FormatInt(rows, 10)+"\x00"))
	if c.implicit {
		return c.answer('I')
	}
	return c.answer('T')
}

// fail ends the COPY with an error: the server's (body) or the proxy's
// own (pe). Like PostgreSQL's COPY, it fails the client's transaction;
// one the proxy opened is rolled back.
func (c *copyRun) fail(body []byte, pe *pgError) error {
	s := c.s
	var out []byte
	switch {
	case c.implicit:
		out = appendQuery(nil, "ROLLBACK")
	case pe != nil:
		out = appendQuery(nil, raiseSQL(pe))
	}
	if out != nil {
		c.pendingZ++
		if _, _, err := c.roundTrip(out); err != nil {
			return err
		}
	}
	if pe != nil {
		s.out = pe.appendTo(s.out[:0])
	} else {
		s.out = appendMsg(s.out[:0], 'E', body)
	}
	if c.implicit {
		return c.answer('I')
	}
	return c.answer('E')
}

// answer sends what is in s.out and ReadyForQuery, and records the
// server's transaction status.
func (c *copyRun) answer(status byte) error {
	s := c.s
	s.out = appendReadyForQuery(s.out, status)
	s.cw.Write(s.out)
	if err := s.finish(status); err != nil {
		return err
	}
	return s.cw.Flush()
}

// where says which line of the data an error is about, as PostgreSQL's
// COPY does.
func (c *copyRun) where(line int64) string {
	return fmt.Sprintf("COPY %s, line %d", c.st.Table, line)
}

// whereRange names the lines of the i-th INSERT, which failed.
func (c *copyRun) whereRange(i int, lastLine int64) string {
	first, last := c.firstLine[i], lastLine
	if i+1 < len(c.firstLine) {
		last = c.firstLine[i+1] - 1
	}
	if first == last {
		return c.where(first)
	}
	return fmt.Sprintf("COPY %s, lines %d to %d", c.st.Table, first, last)
}

// copyError is a decoding or statement error for the client.
func copyError(err error) *pgError {
	var ce *copyfrom.Error
	if errors.As(err, &ce) {
		return &pgError{Code: ce.Code, Message: ce.Message, Hint: ce.Hint}
	}
	return &pgError{Code: "22P04", Message: err.Error()}
}

// appendBind encodes a Bind of the unnamed statement with the batch's rows.
func (c *copyRun) appendBind(dst []byte, b *copyfrom.Batch, format byte) []byte {
	start := len(dst)
	dst = append(dst, 'B', 0, 0, 0, 0, 0, 0) // unnamed portal and statement
	if format == 1 {
		dst = append(dst, 0, 1, 0, 1)
	} else {
		dst = append(dst, 0, 0)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b.Fields)))
	for _, f := range b.Fields {
		if f.Len < 0 {
			dst = binary.BigEndian.AppendUint32(dst, 0xFFFFFFFF)
			continue
		}
		dst = binary.BigEndian.AppendUint32(dst, uint32(f.Len))
		dst = append(dst, b.Data[f.Off:f.Off+f.Len]...)
	}
	dst = append(dst, 0, 0) // results in text
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-1))
	return dst
}

// readInsertResults reads the server's answers to the INSERTs until the
// ReadyForQuery that follows the pipeline's Sync. It closes errSeen at the
// first error, or when the connection fails, so that the COPY stops early.
func readInsertResults(r msgReader, errSeen chan<- struct{}, done chan<- copyResult) {
	var res copyResult
	defer func() {
		if res.errBody == nil {
			close(errSeen)
		}
		done <- res
	}()
	for {
		typ, body, err := r.next()
		if err != nil {
			res.ioErr = err
			return
		}
		switch typ {
		case 'C':
			if tag := string(body); strings.HasPrefix(tag, "INSERT ") {
				if i := strings.LastIndexByte(tag[:len(tag)-1], ' '); i > 0 {
					n, _ := strconv.ParseInt(tag[i+1:len(tag)-1], 10, 64)
					res.rows += n
				}
			}
			res.inserts++
		case 'E':
			if sev := errorField(body, 'V'); sev == "FATAL" || sev == "PANIC" {
				res.fatal = append([]byte(nil), body...)
				return
			}
			if res.errBody == nil {
				res.errBody = append([]byte(nil), body...)
				close(errSeen)
			}
		case 'N':
			if len(res.notices) < 100 {
				res.notices = append(res.notices, append([]byte(nil), body...))
			}
		case 'Z':
			return
		}
	}
}
