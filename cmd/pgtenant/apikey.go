package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/pgtenant/pgtenant/auth"
)

// runAPIKey manages API keys: create prints the key once (only its hash is
// stored), list shows metadata, revoke sets revoked_at.
func runAPIKey(ctx context.Context, _ *zap.Logger, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: pgtenant apikey create|list|revoke [flags]")
	}
	fs := flag.NewFlagSet("apikey "+args[0], flag.ContinueOnError)
	url := fs.String("database-url", envOr("DATABASE_URL", ""), "URL of a role that may manage api_keys (superuser or the operations login)")
	tenant := fs.String("tenant", "", "tenant id (create, list)")
	role := fs.String("role", "tenant", "role the key maps to (a key of roles: in pgtenant's configuration)")
	name := fs.String("name", "", "a name for the key, unique per tenant (create)")
	ttl := fs.Duration("ttl", 0, "expire after this long (create; 0: never)")
	keyID := fs.String("key-id", "", "key id (revoke)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *url == "" {
		return errors.New("apikey: give --database-url or set DATABASE_URL")
	}
	conn, err := pgx.Connect(ctx, *url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	switch args[0] {
	case "create":
		id, err := uuid.Parse(*tenant)
		if err != nil {
			return fmt.Errorf("apikey create: --tenant: %w", err)
		}
		key, kid, hash, err := auth.NewAPIKey()
		if err != nil {
			return err
		}
		if *name == "" {
			*name = kid
		}
		var expires *time.Time
		if *ttl > 0 {
			t := time.Now().Add(*ttl)
			expires = &t
		}
		if err := withOperations(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO api_keys (tenant_id, key_id, secret_hash, name, role, expires_at)
                VALUES ($1, $2, $3, $4, $5, $6)`, id, kid, hash, *name, *role, expires)
			return err
		}); err != nil {
			return fmt.Errorf("apikey create: %w", err)
		}
		fmt.Fprintf(os.Stderr, "created key %s for tenant %s (role %s); it is shown once:\n", kid, id, *role)
		fmt.Println(key)
	case "list":
		return withOperations(ctx, conn, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT key_id, tenant_id::text, name, role, coalesce(expires_at::text, ''),
                coalesce(revoked_at::text, ''), created_at::text FROM api_keys
                WHERE $1 = '' OR tenant_id::text = $1 ORDER BY created_at`, *tenant)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
			fmt.Fprintln(w, "KEY ID\tTENANT\tNAME\tROLE\tEXPIRES\tREVOKED\tCREATED")
			for rows.Next() {
				var v [7]string
				if err := rows.Scan(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]); err != nil {
					return err
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v[0], v[1], v[2], v[3], v[4], v[5], v[6])
			}
			w.Flush()
			return rows.Err()
		})
	case "revoke":
		return withOperations(ctx, conn, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL`, *keyID)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return fmt.Errorf("apikey revoke: no active key %q", *keyID)
			}
			fmt.Fprintf(os.Stderr, "revoked %s; pgtenant stops accepting it within api_keys.cache_ttl\n", *keyID)
			return nil
		})
	default:
		return fmt.Errorf("apikey: unknown subcommand %q (create, list, revoke)", args[0])
	}
	return nil
}

// withOperations runs fn as erun_operations when the login may become it
// (the operations login), or as the login itself (a superuser).
func withOperations(ctx context.Context, conn *pgx.Conn, fn func(pgx.Tx) error) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var super bool
	if err := tx.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		return err
	}
	if !super {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE erun_operations"); err != nil {
			return err
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
