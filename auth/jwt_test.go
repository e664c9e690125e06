package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

var roleMap = RoleMap{Roles: map[string]string{"tenant": "erun_tenant", "operations": "erun_operations"},
	CrossTenant: map[string]bool{"erun_operations": true}}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestKeysFromJWKSAndPEM: keys of every supported type, loaded as they are
// configured, verify tokens signed by their private halves and nothing else.
func TestKeysFromJWKSAndPEM(t *testing.T) {
	dir := t.TempDir()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	jwks := map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "r", "alg": "PS256", "n": b64(rsaKey.N.Bytes()), "e": b64(big.NewInt(int64(rsaKey.E)).Bytes())},
		{"kty": "EC", "kid": "e", "alg": "ES256", "crv": "P-256", "x": b64(ecKey.X.FillBytes(make([]byte, 32))), "y": b64(ecKey.Y.FillBytes(make([]byte, 32)))},
		{"kty": "OKP", "kid": "d", "alg": "EdDSA", "crv": "Ed25519", "x": b64(edPub)},
		{"kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"},
	}}
	jb, _ := json.Marshal(jwks)
	jwksFile := filepath.Join(dir, "jwks.json")
	os.WriteFile(jwksFile, jb, 0o644)
	keys, err := LoadJWKS(jwksFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("loaded %d keys, want 3 (the encryption key skipped)", len(keys))
	}
	for _, pub := range []any{&ecKey.PublicKey, edPub} {
		der, _ := x509.MarshalPKIXPublicKey(pub)
		path := filepath.Join(dir, "k.pem")
		os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
		k, err := LoadPEMKey(path)
		if err != nil {
			t.Fatal(err)
		}
		alg := map[bool]string{true: "ES256", false: "EdDSA"}[pub == any(&ecKey.PublicKey)]
		keys = append(keys, VerificationKey{KID: "pem-" + alg, Alg: alg, Key: k})
	}
	v, err := NewJWTVerifier(JWTOptions{Keys: keys, RequireExp: true, TenantClaim: "tenant_id", RoleClaim: "role", Roles: roleMap})
	if err != nil {
		t.Fatal(err)
	}
	tenant := uuid.New()
	claims := jwt.MapClaims{"role": "tenant", "tenant_id": tenant.String(), "exp": time.Now().Add(time.Minute).Unix()}
	sign := func(m jwt.SigningMethod, kid string, key crypto.Signer) string {
		tok := jwt.NewWithClaims(m, claims)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	good := map[string]string{
		"PS256 from JWKS": sign(jwt.SigningMethodPS256, "r", rsaKey),
		"ES256 from JWKS": sign(jwt.SigningMethodES256, "e", ecKey),
		"EdDSA from JWKS": sign(jwt.SigningMethodEdDSA, "d", edKey),
		"ES256 from PEM":  sign(jwt.SigningMethodES256, "pem-ES256", ecKey),
		"EdDSA from PEM":  sign(jwt.SigningMethodEdDSA, "pem-EdDSA", edKey),
	}
	for name, tok := range good {
		id, err := v.Verify(context.Background(), tok)
		if err != nil || id.TenantID != tenant || id.Role != "erun_tenant" {
			t.Errorf("%s: %+v, %v", name, id, err)
		}
	}
	bad := map[string]string{
		"RS256 where the key is pinned to PS256": sign(jwt.SigningMethodRS256, "r", rsaKey),
		"PS256 by another key":                   sign(jwt.SigningMethodPS256, "r", otherRSA),
		"ES256 under the EdDSA kid":              sign(jwt.SigningMethodES256, "d", ecKey),
	}
	for name, tok := range bad {
		if _, err := v.Verify(context.Background(), tok); !IsFailure(err) {
			t.Errorf("%s: accepted (err %v)", name, err)
		}
	}
}

func TestKeysMustFitTheirAlgorithm(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	cases := map[string]VerificationKey{
		"HMAC secret too short": {Alg: "HS256", Key: []byte("short")},
		"RSA key for HS256":     {Alg: "HS256", Key: &rsaKey.PublicKey},
		"HMAC secret for RS256": {Alg: "RS256", Key: []byte("0123456789abcdef0123456789abcdef")},
		"none":                  {Alg: "none", Key: []byte("0123456789abcdef0123456789abcdef")},
	}
	for name, k := range cases {
		if _, err := NewJWTVerifier(JWTOptions{Keys: []VerificationKey{k}, Roles: roleMap}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
