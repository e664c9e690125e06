package tenantctx

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

// The expected proof was computed independently:
//
//	printf %s 0190b6a0-7c1e-7a3b-8c9d-0123456789ab:4242:1234567890123 | openssl dgst -sha256 -hmac kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk
func TestProofMatchesReferenceHMAC(t *testing.T) {
	k := Key{ID: "k1", Secret: []byte(strings.Repeat("k", 32))}
	got := k.Proof(uuid.MustParse("0190B6A0-7C1E-7A3B-8C9D-0123456789AB"), 4242, 1234567890123)
	const want = "k1:1234567890123:" + referenceMAC
	if got != want {
		t.Fatalf("Proof = %s, want %s", got, want)
	}
}

func TestParseKey(t *testing.T) {
	good := "dev-1:" + strings.Repeat("ab", 32)
	cases := []struct {
		in      string
		wantErr string
	}{
		{good, ""},
		{"dev-1", "want <key id>:<hex secret>"},
		{"bad id:" + strings.Repeat("ab", 32), "want 1-64 characters"},
		{"dev-1:zz", "not hex"},
		{"dev-1:abab", "has 2 bytes"},
	}
	for _, c := range cases {
		k, err := ParseKey(c.in)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("ParseKey(%q): %v", c.in, err)
		case c.wantErr == "" && k.Encode() != c.in:
			t.Errorf("ParseKey(%q).Encode() = %q", c.in, k.Encode())
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("ParseKey(%q) error = %v, want it to mention %q", c.in, err, c.wantErr)
		}
	}
}

const referenceMAC = "d16e0bea3bf4f0d90928ed8eab8eb28fa04b148ac106a162caf5bb2113884301"
