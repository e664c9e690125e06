package auth

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PGResolver reads the resolution root through the schema's SECURITY
// DEFINER functions, as the login that setup-roles granted them to.
type PGResolver struct{ Pool *pgxpool.Pool }

// LookupAPIKey implements Resolver.
func (r PGResolver) LookupAPIKey(ctx context.Context, keyID string) (*APIKeyRecord, error) {
	var rec APIKeyRecord
	err := r.Pool.QueryRow(ctx, `SELECT tenant_id, role, secret_hash, expires_at, revoked_at
        FROM erun_lookup_api_key($1)`, keyID).Scan(&rec.TenantID, &rec.Role, &rec.SecretHash, &rec.ExpiresAt, &rec.RevokedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

// ResolveIssuer implements Resolver.
func (r PGResolver) ResolveIssuer(ctx context.Context, issuer string) (uuid.UUID, bool, error) {
	var tenant *uuid.UUID
	if err := r.Pool.QueryRow(ctx, `SELECT erun_resolve_issuer($1)`, issuer).Scan(&tenant); err != nil {
		return uuid.Nil, false, err
	}
	if tenant == nil {
		return uuid.Nil, false, nil
	}
	return *tenant, true, nil
}
