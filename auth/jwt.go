package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// VerificationKey is one key with its pinned algorithm.
type VerificationKey struct {
	KID string
	Alg string // HS256, RS256, PS256, ES256, EdDSA, ...
	Key any    // []byte for HMAC, else a public key
}

// JWTOptions configure a JWTVerifier.
type JWTOptions struct {
	Keys        []VerificationKey
	Issuers     []string // accepted iss; empty accepts any
	Audience    string
	Leeway      time.Duration
	RequireExp  bool
	TenantClaim string
	RoleClaim   string
	Roles       RoleMap
	// IssuerMode: the tenant is tenant_issuers' row for iss, found through
	// Resolver, instead of TenantClaim.
	IssuerMode bool
	Resolver   Resolver
}

// JWTVerifier verifies tokens. It is safe for concurrent use.
type JWTVerifier struct {
	opts   JWTOptions
	parser *jwt.Parser
}

// NewJWTVerifier checks the keys and builds a verifier.
func NewJWTVerifier(opts JWTOptions) (*JWTVerifier, error) {
	if len(opts.Keys) == 0 {
		return nil, errors.New("jwt: no keys")
	}
	var algs []string
	for i, k := range opts.Keys {
		m := jwt.GetSigningMethod(k.Alg)
		if m == nil || k.Alg == "none" {
			return nil, fmt.Errorf("jwt key %d: unknown or forbidden alg %q", i, k.Alg)
		}
		if err := keyFitsAlg(k); err != nil {
			return nil, fmt.Errorf("jwt key %d (%s): %w", i, k.Alg, err)
		}
		if !slices.Contains(algs, k.Alg) {
			algs = append(algs, k.Alg)
		}
	}
	if opts.IssuerMode && opts.Resolver == nil {
		return nil, errors.New("jwt: issuer mode needs a resolver")
	}
	popts := []jwt.ParserOption{jwt.WithValidMethods(algs), jwt.WithLeeway(opts.Leeway), jwt.WithIssuedAt()}
	if opts.RequireExp {
		popts = append(popts, jwt.WithExpirationRequired())
	}
	if opts.Audience != "" {
		popts = append(popts, jwt.WithAudience(opts.Audience))
	}
	return &JWTVerifier{opts: opts, parser: jwt.NewParser(popts...)}, nil
}

// keyFitsAlg refuses algorithm confusion at configuration time: an HMAC
// algorithm takes only a shared secret, the others only their public key type.
func keyFitsAlg(k VerificationKey) error {
	var ok bool
	switch k.Alg[:2] {
	case "HS":
		b, isBytes := k.Key.([]byte)
		ok = isBytes && len(b) >= 32
		if isBytes && !ok {
			return errors.New("an HMAC secret must have at least 32 bytes")
		}
	case "RS", "PS":
		_, ok = k.Key.(*rsa.PublicKey)
	case "ES":
		_, ok = k.Key.(*ecdsa.PublicKey)
	case "Ed":
		_, ok = k.Key.(ed25519.PublicKey)
	}
	if !ok {
		return fmt.Errorf("key of type %T does not fit the algorithm", k.Key)
	}
	return nil
}

// keyFor picks the key for a token: by kid, else every key with the token's
// alg. The alg in the header must be the key's pinned alg.
func (v *JWTVerifier) keyFor(t *jwt.Token) (any, error) {
	alg, _ := t.Header["alg"].(string)
	kid, _ := t.Header["kid"].(string)
	var set jwt.VerificationKeySet
	for _, k := range v.opts.Keys {
		if kid != "" && k.KID != kid {
			continue
		}
		if k.Alg == alg {
			set.Keys = append(set.Keys, k.Key)
		}
	}
	if len(set.Keys) == 0 {
		if kid != "" {
			return nil, fmt.Errorf("no key with kid %q and alg %q", kid, alg)
		}
		return nil, fmt.Errorf("no key for alg %q", alg)
	}
	if len(set.Keys) == 1 {
		return set.Keys[0], nil
	}
	return set, nil
}

// Verify checks a token and maps it to an Identity.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Identity, error) {
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.keyFor); err != nil {
		return Identity{}, fail("jwt: %v", err)
	}
	iss, _ := claims["iss"].(string)
	if len(v.opts.Issuers) > 0 && !slices.Contains(v.opts.Issuers, iss) {
		return Identity{}, fail("jwt: issuer %q is not accepted", iss)
	}
	credRole, _ := claims[v.opts.RoleClaim].(string)
	role, err := v.opts.Roles.resolve(credRole)
	if err != nil {
		return Identity{}, err
	}
	sub, _ := claims["sub"].(string)
	id := Identity{Role: role, Subject: sub, Issuer: iss, Source: SourceJWT}
	switch {
	case v.opts.IssuerMode:
		tenant, found, err := v.opts.Resolver.ResolveIssuer(ctx, iss)
		if err != nil {
			return Identity{}, err // infrastructure error, not a failure
		}
		if !found {
			return Identity{}, fail("jwt: issuer %q belongs to no tenant", iss)
		}
		id.TenantID = tenant
	default:
		raw, present := claims[v.opts.TenantClaim]
		if !present {
			if v.opts.Roles.CrossTenant[role] {
				return id, nil
			}
			return Identity{}, fail("jwt: no %q claim", v.opts.TenantClaim)
		}
		s, _ := raw.(string)
		tenant, err := uuid.Parse(s)
		if err != nil || len(s) != 36 {
			return Identity{}, fail("jwt: claim %q is not a UUID", v.opts.TenantClaim)
		}
		id.TenantID = tenant
	}
	return id, nil
}

// LoadPEMKey reads a public key (RSA, ECDSA or Ed25519) from a PEM file.
func LoadPEMKey(path string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if k, err := jwt.ParseRSAPublicKeyFromPEM(b); err == nil {
		return k, nil
	}
	if k, err := jwt.ParseECPublicKeyFromPEM(b); err == nil {
		return k, nil
	}
	if k, err := jwt.ParseEdPublicKeyFromPEM(b); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("%s: no RSA, ECDSA or Ed25519 public key", path)
}

// LoadJWKS reads the public keys of a JWKS file. Each key must carry alg
// (or it is refused: the algorithm is pinned per key).
func LoadJWKS(path string) ([]VerificationKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set struct {
		Keys []struct {
			Kty, Kid, Alg, Use string
			N, E, Crv, X, Y    string
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []VerificationKey
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Alg == "" {
			return nil, fmt.Errorf("%s: key %d (kid %q) has no alg", path, i, k.Kid)
		}
		var pub any
		switch k.Kty {
		case "RSA":
			n, err1 := b64int(k.N)
			e, err2 := b64int(k.E)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("%s: key %d: %w", path, i, err)
			}
			pub = &rsa.PublicKey{N: n, E: int(e.Int64())}
		case "EC":
			x, err1 := b64int(k.X)
			y, err2 := b64int(k.Y)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("%s: key %d: %w", path, i, err)
			}
			var curve elliptic.Curve
			switch k.Crv {
			case "P-256":
				curve = elliptic.P256()
			case "P-384":
				curve = elliptic.P384()
			case "P-521":
				curve = elliptic.P521()
			default:
				return nil, fmt.Errorf("%s: key %d: curve %q", path, i, k.Crv)
			}
			pub = &ecdsa.PublicKey{Curve: curve, X: x, Y: y}
		case "OKP":
			x, err := base64.RawURLEncoding.DecodeString(k.X)
			if err != nil || k.Crv != "Ed25519" || len(x) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("%s: key %d: want an Ed25519 key", path, i)
			}
			pub = ed25519.PublicKey(x)
		default:
			return nil, fmt.Errorf("%s: key %d: key type %q is not supported", path, i, k.Kty)
		}
		out = append(out, VerificationKey{KID: k.Kid, Alg: k.Alg, Key: pub})
	}
	return out, nil
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	return new(big.Int).SetBytes(b), nil
}

var _ crypto.PublicKey = (*rsa.PublicKey)(nil)
