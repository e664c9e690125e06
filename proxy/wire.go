package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"

	"github.com/jackc/pgx/v5/pgproto3"
)

// maxMessageLen bounds a single protocol message from either side; a longer
// one is refused rather than buffered (a client cannot make the proxy
// allocate gigabytes with one length field).
const maxMessageLen = 64 << 20

// msgReader reads typed protocol messages from a buffered stream without
// copying them more than once. The body is valid until the next call.
type msgReader struct {
	r   *bufio.Reader
	buf []byte
}

type errTooLong struct{ n int }

func (e errTooLong) Error() string {
	return fmt.Sprintf("message of %d bytes exceeds the limit of %d", e.n, maxMessageLen)
}

func (m *msgReader) next() (byte, []byte, error) {
	hdr, err := m.r.Peek(5)
	if err != nil {
		if len(hdr) > 0 && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	typ := hdr[0]
	n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
	if n < 0 || n > maxMessageLen {
		return 0, nil, errTooLong{n}
	}
	m.r.Discard(5)
	if cap(m.buf) < n {
		m.buf = make([]byte, n)
	}
	body := m.buf[:n]
	if _, err := io.ReadFull(m.r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return typ, body, nil
}

// appendMsg appends a typed message.
func appendMsg(dst []byte, typ byte, body []byte) []byte {
	dst = append(dst, typ, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[len(dst)-4:], uint32(len(body)+4))
	return append(dst, body...)
}

func appendQuery(dst []byte, sql string) []byte {
	dst = append(dst, 'Q', 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[len(dst)-4:], uint32(len(sql)+5))
	dst = append(dst, sql...)
	return append(dst, 0)
}

func appendReadyForQuery(dst []byte, status byte) []byte {
	return append(dst, 'Z', 0, 0, 0, 5, status)
}

// cstring splits a NUL-terminated string off b.
func cstring(b []byte) (string, []byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(b[:i]), b[i+1:], true
}

// pgError is an error for the client, with its SQLSTATE. Every error the
// proxy itself sends is built here.
type pgError struct {
	Severity string // ERROR or FATAL
	Code     string
	Message  string
	Detail   string
	Hint     string
	Where    string
}

func (e *pgError) Error() string { return e.Code + ": " + e.Message }

func (e *pgError) appendTo(dst []byte) []byte {
	sev := e.Severity
	if sev == "" {
		sev = "ERROR"
	}
	msg := pgproto3.ErrorResponse{Severity: sev, SeverityUnlocalized: sev, Code: e.Code,
		Message: e.Message, Detail: e.Detail, Hint: e.Hint, Where: e.Where}
	out, _ := msg.Encode(dst)
	return out
}

// Client-facing errors.
func errProtocol(format string, args ...any) *pgError {
	return &pgError{Severity: "FATAL", Code: "08P01", Message: fmt.Sprintf(format, args...)}
}

func errAuthFailed(user string) *pgError {
	return &pgError{Severity: "FATAL", Code: "28P01",
		Message: "password authentication failed for user " + strconv.Quote(user)}
}

// errorField returns the value of field f in an ErrorResponse body.
func errorField(body []byte, f byte) string {
	for len(body) > 0 && body[0] != 0 {
		typ := body[0]
		v, rest, ok := cstring(body[1:])
		if !ok {
			return ""
		}
		if typ == f {
			return v
		}
		body = rest
	}
	return ""
}

// rewriteErrorField returns body with field f set to v (or removed if v
// is empty).
func rewriteErrorField(body []byte, f byte, v string) []byte {
	out := make([]byte, 0, len(body)+len(v))
	set := v == ""
	for len(body) > 0 && body[0] != 0 {
		typ := body[0]
		val, rest, ok := cstring(body[1:])
		if !ok {
			break
		}
		if typ == f {
			if v != "" {
				out = append(append(append(out, typ), v...), 0)
				set = true
			}
		} else {
			out = append(append(append(out, typ), val...), 0)
		}
		body = rest
	}
	if !set {
		out = append(append(append(out, f), v...), 0)
	}
	return append(out, 0)
}

// pgproto3NoticeWarning encodes a NoticeResponse of severity WARNING.
func pgproto3NoticeWarning(code, msg string) []byte {
	n := pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: code, Message: msg}
	out, _ := n.Encode(nil)
	return out
}
