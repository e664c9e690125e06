// Package auth turns the password a client sent into an Identity: a JWT
// verified against configured keys, or an API key looked up in the
// database. It never talks to clients: every failure is a *Failure whose
// reason is for the log only; the proxy answers all of them with the same
// 28P01. Secrets (tokens, keys) never appear in a Failure.
package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Source says which kind of credential produced an Identity.
type Source string

const (
	SourceJWT    Source = "jwt"
	SourceAPIKey Source = "api_key"
)

// Identity is who a client is.
type Identity struct {
	// TenantID is the tenant whose rows the client may see; uuid.Nil for a
	// cross-tenant role (operations).
	TenantID uuid.UUID
	Role     string // PostgreSQL role to SET LOCAL ROLE to
	Subject  string // JWT sub, or the API key id
	Issuer   string // JWT iss; empty for API keys
	Source   Source
}

// Failure is an authentication failure. Reason is safe to log.
type Failure struct{ Reason string }

func (f *Failure) Error() string { return "authentication failed: " + f.Reason }

func fail(format string, args ...any) error { return &Failure{Reason: fmt.Sprintf(format, args...)} }

// IsFailure reports whether err is a credential failure (as opposed to an
// infrastructure error such as the database being unreachable).
func IsFailure(err error) bool {
	var f *Failure
	return errors.As(err, &f)
}

// RoleMap maps the role a credential names to a PostgreSQL role. Anything
// not in the map is refused.
type RoleMap struct {
	Roles map[string]string
	// CrossTenant lists PostgreSQL roles that need no tenant (operations).
	CrossTenant map[string]bool
}

func (m RoleMap) resolve(credRole string) (string, error) {
	if credRole == "" {
		return "", fail("no role in the credential")
	}
	pg, ok := m.Roles[credRole]
	if !ok {
		return "", fail("role %q is not in the role map", credRole)
	}
	return pg, nil
}

// Authenticator dispatches on the credential's form.
type Authenticator struct {
	JWT     *JWTVerifier    // nil: JWTs are refused
	APIKeys *APIKeyVerifier // nil: API keys are refused
}

// Authenticate verifies password and returns the client's identity.
func (a *Authenticator) Authenticate(ctx context.Context, password string) (Identity, error) {
	switch {
	case password == "":
		return Identity{}, fail("empty password")
	case strings.HasPrefix(password, APIKeyPrefix):
		if a.APIKeys == nil {
			return Identity{}, fail("API keys are not enabled")
		}
		return a.APIKeys.Verify(ctx, password)
	case strings.Count(password, ".") == 2:
		if a.JWT == nil {
			return Identity{}, fail("JWTs are not enabled (no jwt.keys)")
		}
		return a.JWT.Verify(ctx, password)
	default:
		return Identity{}, fail("the password is neither a JWT nor an API key")
	}
}
