// Package tenantctx signs the tenant context of a transaction.
//
// The proxy sets erun.tenant_id and erun.tenant_proof; the database function
// erun_current_tenant_id() recomputes the proof with the key of the same id
// from erun_private.context_keys and refuses the context unless it matches.
// This package must stay byte-for-byte compatible with that function: the
// HMAC-SHA256 is over the canonical lower-case UUID text, and the proof is
// "<key id>:<64 lower-case hex digits>".
package tenantctx

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
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

// Proof returns the value of erun.tenant_proof for tenant.
func (k Key) Proof(tenant uuid.UUID) string {
	mac := hmac.New(sha256.New, k.Secret)
	mac.Write([]byte(tenant.String())) // uuid.String is canonical lower case
	return k.ID + ":" + hex.EncodeToString(mac.Sum(nil))
}
