package proxy_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgtenant/pgtenant/internal/proxytest"
)

func startup(user, db string) []byte {
	m := pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": user, "database": db}}
	b, _ := m.Encode(nil)
	return b
}

func password(pw string) []byte {
	b, _ := (&pgproto3.PasswordMessage{Password: pw}).Encode(nil)
	return b
}

// readUntil reads backend messages until one of type want (or an error
// response) and returns its type and body.
func readUntil(t *testing.T, r *bufio.Reader, want byte) (byte, []byte) {
	t.Helper()
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatal(err)
		}
		if hdr[0] == want || hdr[0] == 'E' {
			return hdr[0], body
		}
	}
}

// TestMalformedInput: bad bytes get a proper error (or a closed socket where
// the protocol allows nothing else) and never wedge the proxy.
func TestMalformedInput(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{})
	token := e.Token(e.A.ID, "tenant", nil)
	authed := func(t *testing.T) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", e.Proxy.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(c)
		c.Write(startup("app", e.DBName))
		readUntil(t, r, 'R')
		c.Write(password(token))
		if typ, body := readUntil(t, r, 'Z'); typ != 'Z' {
			t.Fatalf("login failed: %s", body)
		}
		return c, r
	}
	cases := []struct {
		name   string
		before bool   // sent before authentication (raw start-up bytes)
		send   []byte // bytes to send
		code   string // expected SQLSTATE, or "" for "connection closed"
	}{
		{"unsupported protocol version", true, []byte{0, 0, 0, 8, 0, 2, 0, 0}, "08P01"},
		{"start-up length too big", true, []byte{0x7f, 0, 0, 0, 0, 3, 0, 0}, "08P01"},
		{"start-up length too small", true, []byte{0, 0, 0, 2}, "08P01"},
		{"start-up without user", true, append([]byte{0, 0, 0, 9, 0, 3, 0, 0}, 0), "08P01"},
		{"oversized message", false, []byte{'Q', 0x7f, 0xff, 0xff, 0xff}, "08P01"},
		{"negative length", false, []byte{'Q', 0, 0, 0, 1}, "08P01"},
		{"query without terminator", false, []byte{'Q', 0, 0, 0, 7, 'S', 'E', 'L'}, "08P01"},
		{"unknown message type", false, []byte{'@', 0, 0, 0, 4}, "08P01"},
		{"malformed Parse", false, []byte{'P', 0, 0, 0, 6, 'x', 0, 'S', 0, 0, 0, 4}, "08P01"},
		{"malformed Bind", false, []byte{'B', 0, 0, 0, 5, 'p', 'S', 0, 0, 0, 4}, "08P01"},
		{"FunctionCall", false, []byte{'F', 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, "0A000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var conn net.Conn
			var r *bufio.Reader
			if c.before {
				var err error
				conn, err = net.Dial("tcp", e.Proxy.Addr)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(20 * time.Second))
				r = bufio.NewReader(conn)
			} else {
				conn, r = authed(t)
			}
			conn.Write(c.send)
			typ, body := readUntil(t, r, 'E')
			if typ != 'E' {
				t.Fatalf("got %q, want an ErrorResponse", typ)
			}
			var er pgproto3.ErrorResponse
			if err := er.Decode(body); err != nil {
				t.Fatal(err)
			}
			if er.Code != c.code {
				t.Fatalf("SQLSTATE %s (%s), want %s", er.Code, er.Message, c.code)
			}
		})
	}
	// Clients that vanish mid-message leave nothing behind.
	for range 5 {
		conn, _ := authed(t)
		conn.Write([]byte{'Q', 0, 0, 1, 0, 'S', 'E'})
		conn.Close()
	}
	// The proxy still serves everyone.
	c := e.Connect(token, pgx.QueryExecModeCacheStatement)
	var n int
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM projects").Scan(&n); err != nil || n != 2 {
		t.Fatalf("after malformed input: %d, %v", n, err)
	}
}
