package proxy

import (
	"bufio"
	"bytes"
	"container/list"
	"testing"
)

// FuzzReadStartup: any start-up bytes are decoded or refused, never a panic.
func FuzzReadStartup(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 47})                                        // SSLRequest
	f.Add([]byte{0, 0, 0, 16, 4, 210, 22, 46, 0, 0, 0, 1, 0, 0, 0, 2})               // CancelRequest
	f.Add(append([]byte{0, 0, 0, 19, 0, 3, 0, 0}, []byte("user\x00app\x00\x00")...)) // StartupMessage
	f.Add(append([]byte{0, 0, 0, 19, 0, 3, 0, 2}, []byte("user\x00app\x00\x00")...)) // protocol 3.2
	f.Fuzz(func(t *testing.T, b []byte) {
		readStartup(bufio.NewReader(bytes.NewReader(b)))
	})
}

// FuzzExtendedBatch: arbitrary extended-protocol messages from a client are
// turned into a server batch or refused, never a panic; the batch the
// server gets is a sequence of well-formed messages.
func FuzzExtendedBatch(f *testing.F) {
	f.Add([]byte("P\x00SELECT 1\x00\x00\x00"), []byte("B\x00\x00\x00\x00\x00\x00\x00\x00"), []byte("E\x00\x00\x00\x00\x00"))
	f.Add([]byte("Pst\x00BEGIN\x00\x00\x00"), []byte("B\x00st\x00\x00\x00\x00\x00\x00\x00"), []byte("E\x00\x00\x00\x00\x00"))
	f.Add([]byte("DSst\x00"), []byte("CSst\x00"), []byte("CP\x00"))
	f.Fuzz(func(t *testing.T, m1, m2, m3 []byte) {
		s := &session{stmts: map[string]*preparedStmt{}, portalKinds: map[string]stmtKind{}, portalBegin: map[string]string{},
			portalChanges: map[string]settingChange{}, portalLocal: map[string]string{}, settings: settings{},
			frames: frames{frame: "SET LOCAL ROLE r", n: 1}}
		var msgs []clientMsg
		for _, m := range [][]byte{m1, m2, m3} {
			if len(m) == 0 {
				continue
			}
			msgs = append(msgs, clientMsg{typ: m[0], body: m[1:]})
		}
		msgs = append(msgs, clientMsg{typ: 'S'})
		s.srv = New(Options{})
		b := batch{s: s, st: &serverState{prepared: map[string]*list.Element{}, lru: list.New()}}
		b.build(msgs)
		r := msgReader{r: bufio.NewReader(bytes.NewReader(b.buf))}
		for {
			if _, _, err := r.next(); err != nil {
				break
			}
		}
		if len(b.exps) == 0 || b.exps[len(b.exps)-1].kind == expSynthetic {
			t.Fatalf("a batch ending in Sync must end by waiting for the server")
		}
	})
}
