package proxy

import (
	"fmt"
	"strings"
	"testing"
)

const testFrame = "SET LOCAL ROLE r; SET LOCAL erun.tenant_id = 't'; SET LOCAL erun.tenant_proof = 'p'"

func TestPlanSimple(t *testing.T) {
	cases := []struct {
		name     string
		sql      string
		framed   bool
		before   string
		text     string
		injected string // per statement of text: i injected, c client, q quiet client
		after    []string
		endsIn   bool
	}{
		{"implicit statement", "SELECT 1", false, "BEGIN; " + testFrame, "SELECT 1", "c", []string{"COMMIT"}, false},
		{"implicit multi-statement", "SELECT 1; SELECT 2", false, "BEGIN; " + testFrame, "SELECT 1; SELECT 2", "cc", []string{"COMMIT"}, false},
		{"inside the client's block", "SELECT 1", true, "", "SELECT 1", "c", nil, true},
		{"client BEGIN alone", "BEGIN ISOLATION LEVEL SERIALIZABLE", false, "", "BEGIN ISOLATION LEVEL SERIALIZABLE", "c", []string{testFrame}, true},
		{"client BEGIN then work", "BEGIN; INSERT 1", false, "", "BEGIN; " + testFrame + "; INSERT 1", "ciiic", nil, true},
		{"BEGIN … COMMIT in one string", "BEGIN; INSERT 1; COMMIT", false, "", "BEGIN; " + testFrame + "; INSERT 1; COMMIT", "ciiicc", nil, false},
		{"COMMIT then more work", "COMMIT; SELECT 1", true, "", "COMMIT; BEGIN; " + testFrame + "; SELECT 1", "ciiiic", []string{"COMMIT"}, false},
		{"COMMIT AND CHAIN re-frames", "COMMIT AND CHAIN", true, "", "COMMIT AND CHAIN", "c", []string{testFrame}, true},
		{"COMMIT AND CHAIN mid-string", "COMMIT AND CHAIN; SELECT 1", true, "", "COMMIT AND CHAIN; " + testFrame + "; SELECT 1", "ciiic", nil, true},
		{"BEGIN inside the proxy's wrapper is quiet", "SELECT 1; BEGIN; SELECT 2", false, "BEGIN; " + testFrame, "SELECT 1; BEGIN; SELECT 2", "cqc", nil, true},
		{"COMMIT while idle passes through", "COMMIT", false, "", "COMMIT", "c", nil, false},
		{"trailing comment stays after the frame", "BEGIN; SELECT 1 -- x;", false, "", "BEGIN; " + testFrame + "; SELECT 1 -- x;", "ciiic", nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := planSimple(c.sql, splitStatements(c.sql), c.framed, frames{frame: testFrame, n: 3})
			if p.before != c.before || p.text != c.text || fmt.Sprint(p.after) != fmt.Sprint(c.after) || p.framed != c.endsIn {
				t.Fatalf("plan = before %q text %q after %q framed %v\nwant   before %q text %q after %q framed %v",
					p.before, p.text, p.after, p.framed, c.before, c.text, c.after, c.endsIn)
			}
			var got strings.Builder
			for i := range p.injected {
				switch {
				case p.injected[i]:
					got.WriteByte('i')
				case p.quiet[i]:
					got.WriteByte('q')
				default:
					got.WriteByte('c')
				}
			}
			if got.String() != c.injected {
				t.Fatalf("statement marks = %s, want %s", got.String(), c.injected)
			}
			if n := len(splitStatements(p.text)); n != len(p.injected) {
				t.Fatalf("%d statements in text, %d marks", n, len(p.injected))
			}
		})
	}
}

func TestMapPosition(t *testing.T) {
	sql := "BEGIN; SELECT ü FROM nowhere"
	p := planSimple(sql, splitStatements(sql), false, frames{frame: testFrame, n: 3})
	// Position of "nowhere" in the rewritten text, in characters.
	sentPos := strings.Count(p.text[:strings.Index(p.text, "nowhere")], "") // runes before + 1
	sentPos = len([]rune(p.text[:strings.Index(p.text, "nowhere")])) + 1
	want := len([]rune(sql[:strings.Index(sql, "nowhere")])) + 1
	got, ok := mapPosition(p.text, p.ins, sentPos)
	if !ok || got != want {
		t.Fatalf("mapPosition = %d, %v; want %d", got, ok, want)
	}
	framePos := len([]rune(p.text[:strings.Index(p.text, "SET LOCAL")])) + 1
	if _, ok := mapPosition(p.text, p.ins, framePos); ok {
		t.Fatalf("a position inside the frame must not map to the client's text")
	}
}
