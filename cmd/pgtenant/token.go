package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/pgtenant/pgtenant/internal/config"
)

// runToken mints a JWT with the configuration's first HMAC key, for
// development and tests.
func runToken(_ context.Context, _ *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	path := fs.String("config", envOr("PGTENANT_CONFIG", "pgtenant.yaml"), "configuration file")
	tenant := fs.String("tenant", "", "tenant id (UUID); omit for a cross-tenant role")
	role := fs.String("role", "tenant", "role claim (a key of roles: in the configuration)")
	subject := fs.String("subject", "pgtenant-cli", "sub claim")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	tok, err := mintToken(cfg, *tenant, *role, *subject, *ttl)
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}

func mintToken(cfg *config.Config, tenant, role, subject string, ttl time.Duration) (string, error) {
	for _, k := range cfg.JWT.Keys {
		m, ok := jwt.GetSigningMethod(k.Alg).(*jwt.SigningMethodHMAC)
		if !ok || k.Secret.Get() == "" {
			continue
		}
		now := time.Now()
		claims := jwt.MapClaims{cfg.JWT.RoleClaim: role, "sub": subject, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
		if tenant != "" {
			id, err := uuid.Parse(tenant)
			if err != nil {
				return "", fmt.Errorf("token: --tenant: %w", err)
			}
			claims[cfg.JWT.TenantClaim] = id.String()
		}
		if len(cfg.JWT.Issuers) > 0 {
			claims["iss"] = cfg.JWT.Issuers[0]
		}
		if cfg.JWT.Audience != "" {
			claims["aud"] = cfg.JWT.Audience
		}
		t := jwt.NewWithClaims(m, claims)
		if k.KID != "" {
			t.Header["kid"] = k.KID
		}
		return t.SignedString([]byte(k.Secret.Get()))
	}
	return "", errors.New("token: the configuration has no HMAC key with a secret to sign with")
}
