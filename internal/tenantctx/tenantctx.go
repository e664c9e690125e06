// Package tenantctx signs the tenant context of a transaction.
//
// The proxy sets erun.tenant_id and erun.tenant_proof; the database function
// erun_current_tenant_id() recomputes the proof with the key of the same id
// from erun_private.context_keys and refuses the context unless it matches.
// A proof is bound to one server connection (its backend pid) and to one
// loan of it (the connection's context serial, which the proxy advances
// after every loan), so a proof seen anywhere is worthless anywhere else.
// This package must stay byte-for-byte compatible with that function: the
// HMAC-SHA256 is over "<canonical lower-case UUID>:<pid>:<serial>" in
// decimal, and the proof is "<key id>:<serial>:<64 lower-case hex digits>".
package tenantctx

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// MinSecretBytes matches the context_keys_secret_check constraint.
const MinSecretBytes = 32

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Key is a context signing key. Its Secret must never be logged.
type Key struct {
	ID     string
	Secret []byte
}

// GenerateKey returns a new random 32-byte key with the given id.
func GenerateKey(id string) (Key, error) {
	if !keyIDPattern.MatchString(id) {
		return Key{}, fmt.Errorf("context key id %q: want 1-64 characters of A-Z a-z 0-9 _ . -", id)
	}
	secret := make([]byte, MinSecretBytes)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, err
	}
	return Key{ID: id, Secret: secret}, nil
}

// ParseKey reads "<key id>:<hex secret>", the form used in configuration and
// the PGTENANT_CONTEXT_KEY environment variable.
func ParseKey(s string) (Key, error) {
	id, secretHex, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return Key{}, errors.New("context key: want <key id>:<hex secret>")
	}
	if !keyIDPattern.MatchString(id) {
		return Key{}, fmt.Errorf("context key id %q: want 1-64 characters of A-Z a-z 0-9 _ . -", id)
	}
	secret, err := hex.DecodeString(secretHex)
	if err != nil {
		return Key{}, errors.New("context key: the secret is not hex")
	}
	if len(secret) < MinSecretBytes {
		return Key{}, fmt.Errorf("context key: the secret has %d bytes, want at least %d", len(secret), MinSecretBytes)
	}
	return Key{ID: id, Secret: secret}, nil
}

// Encode is the inverse of ParseKey. The result contains the secret.
func (k Key) Encode() string { return k.ID + ":" + hex.EncodeToString(k.Secret) }

// Proof returns the value of erun.tenant_proof for tenant on the backend
// with pid while its context serial is serial.
func (k Key) Proof(tenant uuid.UUID, pid uint32, serial int64) string {
	return string(k.Signer(tenant).AppendProof(nil, pid, serial))
}

// Signer makes the proofs of one tenant. The proxy keeps one per client
// and makes a proof per loan; it is not safe for concurrent use.
func (k Key) Signer(tenant uuid.UUID) *Signer {
	return &Signer{id: k.ID, tenant: tenant.String(), mac: hmac.New(sha256.New, k.Secret)}
}

// Signer: see Key.Signer.
type Signer struct {
	id     string
	tenant string // canonical lower case, as uuid.String gives it
	mac    hash.Hash
}

// AppendProof appends the proof for the backend with pid while its
// context serial is serial to dst.
func (s *Signer) AppendProof(dst []byte, pid uint32, serial int64) []byte {
	var msg [36 + 1 + 10 + 1 + 20]byte
	m := append(msg[:0], s.tenant...)
	m = append(m, ':')
	m = strconv.AppendUint(m, uint64(pid), 10)
	m = append(m, ':')
	m = strconv.AppendInt(m, serial, 10)
	s.mac.Reset()
	s.mac.Write(m)
	var sum [sha256.Size]byte
	dst = append(dst, s.id...)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, serial, 10)
	dst = append(dst, ':')
	return hex.AppendEncode(dst, s.mac.Sum(sum[:0]))
}
