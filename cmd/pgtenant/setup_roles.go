package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/pgtenant/pgtenant/internal/roles"
	"github.com/pgtenant/pgtenant/internal/tenantctx"
)

func runSetupRoles(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("setup-roles", flag.ContinueOnError)
	url := fs.String("database-url", envOr("DATABASE_URL", ""), "superuser URL of the migrated database (default $DATABASE_URL)")
	tenantLogin := fs.String("tenant-login", roles.DefaultTenantLogin, "login role granted erun_tenant")
	opsLogin := fs.String("operations-login", roles.DefaultOperationsLogin, "login role granted erun_operations")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: pgtenant setup-roles [flags]

Secrets come from the environment, never from flags:
  PGTENANT_TENANT_LOGIN_PASSWORD      password of the tenant login role
  PGTENANT_OPERATIONS_LOGIN_PASSWORD  password of the operations login role
  PGTENANT_CONTEXT_KEY                context signing key, <key id>:<hex secret of >= 32 bytes>

flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		return errors.New("setup-roles: give --database-url or set DATABASE_URL")
	}
	key, err := tenantctx.ParseKey(envOr("PGTENANT_CONTEXT_KEY", ""))
	if err != nil {
		return fmt.Errorf("setup-roles: PGTENANT_CONTEXT_KEY: %w", err)
	}
	setup := roles.Setup{
		Tenant:     roles.Login{Name: *tenantLogin, Password: envOr("PGTENANT_TENANT_LOGIN_PASSWORD", "")},
		Operations: roles.Login{Name: *opsLogin, Password: envOr("PGTENANT_OPERATIONS_LOGIN_PASSWORD", "")},
		ContextKey: key,
	}
	conn, err := pgx.Connect(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := roles.Apply(ctx, conn, setup); err != nil {
		return fmt.Errorf("setup-roles: %w", err)
	}
	log.Info("login roles ready", zap.String("tenant_login", *tenantLogin),
		zap.String("operations_login", *opsLogin), zap.String("context_key_id", key.ID))
	return nil
}
