package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// APIKeyPrefix starts every API key: pgt_<key id>_<secret>.
const APIKeyPrefix = "pgt_"

var keyIDPattern = regexp.MustCompile(`^[a-z0-9]{8,32}$`)

// APIKeyRecord is what the database holds for a key id.
type APIKeyRecord struct {
	TenantID   uuid.UUID
	Role       string // credential role, mapped through RoleMap
	SecretHash []byte // SHA-256 of the secret
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
}

// Resolver reads the resolution root. Implementations return (nil, nil)
// or found=false for unknown keys and issuers, and an error only when the
// lookup itself failed.
type Resolver interface {
	LookupAPIKey(ctx context.Context, keyID string) (*APIKeyRecord, error)
	ResolveIssuer(ctx context.Context, issuer string) (uuid.UUID, bool, error)
}

// APIKeyVerifier verifies API keys with a short-lived cache: a revoked key
// keeps working for at most CacheTTL, an unknown one is remembered as
// unknown for NegativeTTL (so guessing key ids does not hammer the
// database).
type APIKeyVerifier struct {
	Resolver    Resolver
	Roles       RoleMap
	CacheTTL    time.Duration
	NegativeTTL time.Duration
	Now         func() time.Time // for tests; nil means time.Now

	mu    sync.Mutex
	cache map[string]cachedKey
}

type cachedKey struct {
	rec     *APIKeyRecord // nil: not found
	expires time.Time
}

const maxCachedKeys = 100_000

func (v *APIKeyVerifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// ParseAPIKey splits pgt_<key id>_<secret>.
func ParseAPIKey(key string) (keyID, secret string, ok bool) {
	rest, found := strings.CutPrefix(key, APIKeyPrefix)
	if !found {
		return "", "", false
	}
	keyID, secret, found = strings.Cut(rest, "_")
	if !found || !keyIDPattern.MatchString(keyID) || len(secret) < 16 {
		return "", "", false
	}
	return keyID, secret, true
}

// Verify checks an API key and maps it to an Identity.
func (v *APIKeyVerifier) Verify(ctx context.Context, key string) (Identity, error) {
	keyID, secret, ok := ParseAPIKey(key)
	if !ok {
		return Identity{}, fail("api key: malformed")
	}
	rec, err := v.lookup(ctx, keyID)
	if err != nil {
		return Identity{}, err
	}
	if rec == nil {
		return Identity{}, fail("api key %s: unknown", keyID)
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], rec.SecretHash) != 1 {
		return Identity{}, fail("api key %s: wrong secret", keyID)
	}
	now := v.now()
	if rec.RevokedAt != nil && !rec.RevokedAt.After(now) {
		return Identity{}, fail("api key %s: revoked", keyID)
	}
	if rec.ExpiresAt != nil && !rec.ExpiresAt.After(now) {
		return Identity{}, fail("api key %s: expired", keyID)
	}
	role, err := v.Roles.resolve(rec.Role)
	if err != nil {
		return Identity{}, err
	}
	return Identity{TenantID: rec.TenantID, Role: role, Subject: keyID, Source: SourceAPIKey}, nil
}

func (v *APIKeyVerifier) lookup(ctx context.Context, keyID string) (*APIKeyRecord, error) {
	now := v.now()
	v.mu.Lock()
	if c, ok := v.cache[keyID]; ok && now.Before(c.expires) {
		v.mu.Unlock()
		return c.rec, nil
	}
	v.mu.Unlock()
	rec, err := v.Resolver.LookupAPIKey(ctx, keyID)
	if err != nil {
		return nil, fmt.Errorf("api key lookup: %w", err)
	}
	ttl := v.CacheTTL
	if rec == nil {
		ttl = v.NegativeTTL
	}
	v.mu.Lock()
	if v.cache == nil || len(v.cache) >= maxCachedKeys {
		v.cache = map[string]cachedKey{} // crude but bounded
	}
	v.cache[keyID] = cachedKey{rec: rec, expires: now.Add(ttl)}
	v.mu.Unlock()
	return rec, nil
}

// NewAPIKey returns a fresh key, its id and the SHA-256 of its secret (what
// the database stores).
func NewAPIKey() (key, keyID string, secretHash []byte, err error) {
	idBytes := make([]byte, 10)
	secretBytes := make([]byte, 32)
	if _, err = rand.Read(idBytes); err != nil {
		return
	}
	if _, err = rand.Read(secretBytes); err != nil {
		return
	}
	keyID = strings.ToLower(base32NoPad(idBytes))
	secret := base64.RawURLEncoding.EncodeToString(secretBytes)
	sum := sha256.Sum256([]byte(secret))
	return APIKeyPrefix + keyID + "_" + secret, keyID, sum[:], nil
}

func base32NoPad(b []byte) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var sb strings.Builder
	var acc, bits uint
	for _, c := range b {
		acc = acc<<8 | uint(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			sb.WriteByte(alphabet[(acc>>bits)&31])
		}
	}
	if bits > 0 {
		sb.WriteByte(alphabet[(acc<<(5-bits))&31])
	}
	return sb.String()
}
