package proxy_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/pgtenant/pgtenant/internal/proxytest"
)

// TestBadCredentialsAreRefused: every bad credential gets the same 28P01,
// and the proxy keeps serving good ones.
func TestBadCredentialsAreRefused(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pemFile := filepath.Join(t.TempDir(), "rsa.pub")
	if err := os.WriteFile(pemFile, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	// Two keys: HS256, and RS256 with kid "rsa-1".
	e := proxytest.Start(t, proxytest.Options{JWTYAML: "keys:\n" +
		"  - {alg: HS256, secret: " + proxytest.HMACSecret + "}\n" +
		"  - {kid: rsa-1, alg: RS256, pem_file: " + pemFile + "}\nleeway: 1s"})

	past := time.Now().Add(-time.Hour)
	expiredKey, _ := e.APIKey(e.A.ID, "tenant", &past)
	revokedKey, revokedID := e.APIKey(e.A.ID, "tenant", nil)
	if _, err := e.Admin.Exec(context.Background(), "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1", revokedID); err != nil {
		t.Fatal(err)
	}
	goodKey, goodID := e.APIKey(e.A.ID, "tenant", nil)
	wrongSecret := goodKey[:strings.LastIndex(goodKey, "_")+1] + strings.Repeat("A", 43)
	unmappedKey, _ := e.APIKey(e.A.ID, "superuser", nil)

	signHS := func(claims jwt.MapClaims, header map[string]any) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		for k, v := range header {
			tok.Header[k] = v
		}
		s, err := tok.SignedString([]byte(proxytest.HMACSecret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "u", "role": "tenant", "tenant_id": e.A.ID.String(), "exp": time.Now().Add(time.Hour).Unix()}
	}
	with := func(k string, v any) jwt.MapClaims { c := base(); c[k] = v; return c }
	without := func(k string) jwt.MapClaims { c := base(); delete(c, k); return c }

	noneToken, _ := jwt.NewWithClaims(jwt.SigningMethodNone, base()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	// Algorithm confusion: HS256 "signed" with the RSA public key as the secret.
	confused := jwt.NewWithClaims(jwt.SigningMethodHS256, base())
	confused.Header["kid"] = "rsa-1"
	confusedToken, _ := confused.SignedString(pubPEM)
	otherHS, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, base()).SignedString([]byte(strings.Repeat("x", 40)))
	goodRS := jwt.NewWithClaims(jwt.SigningMethodRS256, base())
	goodRS.Header["kid"] = "rsa-1"
	goodRSToken, _ := goodRS.SignedString(rsaKey)

	bad := map[string]string{
		"expired":                  signHS(with("exp", time.Now().Add(-time.Hour).Unix()), nil),
		"not yet valid":            signHS(with("nbf", time.Now().Add(time.Hour).Unix()), nil),
		"no exp":                   signHS(without("exp"), nil),
		"wrong signature":          otherHS,
		"alg none":                 noneToken,
		"HMAC with RSA public key": confusedToken,
		"unknown kid":              signHS(base(), map[string]any{"kid": "nope"}),
		"missing tenant claim":     signHS(without("tenant_id"), nil),
		"malformed tenant id":      signHS(with("tenant_id", "not-a-uuid"), nil),
		"numeric tenant id":        signHS(with("tenant_id", 42), nil),
		"unmapped role":            signHS(with("role", "superuser"), nil),
		"no role":                  signHS(without("role"), nil),
		"tampered payload":         tamper(signHS(base(), nil), e.B.ID),
		"revoked api key":          revokedKey,
		"expired api key":          expiredKey,
		"api key wrong secret":     wrongSecret,
		"api key unknown id":       "pgt_zzzzzzzzzzzzzzzz_" + strings.Repeat("a", 43),
		"api key unmapped role":    unmappedKey,
		"garbage":                  "hunter2",
		"empty-ish":                "...",
	}
	for name, password := range bad {
		t.Run(name, func(t *testing.T) {
			cfg, _ := pgx.ParseConfig(e.URL(password))
			_, err := pgx.ConnectConfig(context.Background(), cfg)
			if sqlstate(err) != "28P01" {
				t.Fatalf("err = %v, want 28P01", err)
			}
			if !strings.Contains(err.Error(), `password authentication failed for user "app"`) {
				t.Fatalf("err = %v: every refusal must read the same", err)
			}
		})
	}
	// Wrong issuer and audience need a verifier that checks them.
	e2 := proxytest.Start(t, proxytest.Options{JWTYAML: "keys: [{alg: HS256, secret: " + proxytest.HMACSecret + "}]\n" +
		"issuers: [https://id.example]\naudience: pgtenant"})
	for name, claims := range map[string]jwt.MapClaims{
		"wrong issuer":   {"iss": "https://evil.example", "aud": "pgtenant"},
		"wrong audience": {"iss": "https://id.example", "aud": "someone-else"},
	} {
		t.Run(name, func(t *testing.T) {
			tok := e2.Token(e2.A.ID, "tenant", func(c jwt.MapClaims) {
				for k, v := range claims {
					c[k] = v
				}
			})
			_, err := pgx.Connect(context.Background(), e2.URL(tok))
			if sqlstate(err) != "28P01" {
				t.Fatalf("err = %v, want 28P01", err)
			}
		})
	}
	good := e2.Token(e2.A.ID, "tenant", func(c jwt.MapClaims) { c["iss"], c["aud"] = "https://id.example", "pgtenant" })
	e2.Connect(good, pgx.QueryExecModeSimpleProtocol)

	// The proxy still serves good credentials after all of that.
	for name, pw := range map[string]string{"hs256": e.Token(e.A.ID, "tenant", nil), "rs256": goodRSToken, "api key " + goodID: goodKey} {
		c := e.Connect(pw, pgx.QueryExecModeCacheStatement)
		var tenant uuid.UUID
		if err := c.QueryRow(context.Background(), "SELECT erun_current_tenant_id()").Scan(&tenant); err != nil || tenant != e.A.ID {
			t.Fatalf("%s after refusals: tenant %s, err %v", name, tenant, err)
		}
	}
}

// tamper swaps the tenant in a signed token's payload, keeping the signature.
func tamper(token string, tenant uuid.UUID) string {
	parts := strings.Split(token, ".")
	payload, _ := jwt.NewParser().DecodeSegment(parts[1])
	payload = []byte(strings.Replace(string(payload), `"tenant_id":"`, `"tenant_id":"`+tenant.String()+`","x":"`, 1))
	parts[1] = strings.TrimRight(jwtEncode(payload), "=")
	return strings.Join(parts, ".")
}

func jwtEncode(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestIssuerMode: the tenant comes from tenant_issuers by the token's iss,
// looked up through erun_resolve_issuer as the operations login.
func TestIssuerMode(t *testing.T) {
	e := proxytest.Start(t, proxytest.Options{JWTYAML: "keys: [{alg: HS256, secret: " + proxytest.HMACSecret + "}]\nissuer_mode: true"})
	ctx := context.Background()
	if _, err := e.Admin.Exec(ctx, "INSERT INTO tenant_issuers (tenant_id, issuer) VALUES ($1, 'https://id.globex.test')", e.B.ID); err != nil {
		t.Fatal(err)
	}
	// The tenant claim is ignored in issuer mode: only iss counts.
	tok := e.Token(uuid.Nil, "tenant", func(c jwt.MapClaims) { c["iss"] = "https://id.globex.test"; c["tenant_id"] = e.A.ID.String() })
	c := e.Connect(tok, pgx.QueryExecModeCacheStatement)
	var tenant uuid.UUID
	if err := c.QueryRow(ctx, "SELECT erun_current_tenant_id()").Scan(&tenant); err != nil || tenant != e.B.ID {
		t.Fatalf("tenant %s (%v), want globex %s", tenant, err, e.B.ID)
	}
	unknown := e.Token(uuid.Nil, "tenant", func(c jwt.MapClaims) { c["iss"] = "https://id.nobody.test" })
	if _, err := pgx.Connect(ctx, e.URL(unknown)); sqlstate(err) != "28P01" {
		t.Fatalf("unknown issuer: err = %v, want 28P01", err)
	}
}
