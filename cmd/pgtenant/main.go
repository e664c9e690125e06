// Command pgtenant is a PostgreSQL wire-protocol proxy that runs every
// client transaction under row-level security for its tenant, plus the
// tools around it: schema migrations, login-role setup and a local
// development environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type command struct {
	name, summary string
	run           func(ctx context.Context, log *zap.Logger, args []string) error
}

var commands = []command{
	{"serve", "run the proxy (--config pgtenant.yaml)", runServe},
	{"token", "mint a JWT with the configured HMAC key (development and tests)", runToken},
	{"apikey", "create, list or revoke API keys", runAPIKey},
	{"dev", "run PostgreSQL 18 with the migrated, seeded blueprint for local development", runDev},
	{"migrate", "apply the schema migrations (migrate hash: rewrite migrations/atlas.sum)", runMigrate},
	{"setup-roles", "create the proxy's login roles and install a context signing key", runSetupRoles},
	{"version", "print the version", func(context.Context, *zap.Logger, []string) error {
		fmt.Println("pgtenant", version)
		return nil
	}},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := newLogger()
	defer log.Sync()
	if err := dispatch(ctx, log, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "pgtenant:", err)
		}
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, log *zap.Logger, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return flag.ErrHelp
		}
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(ctx, log, args[1:])
		}
	}
	usage()
	return fmt.Errorf("unknown command %q", args[0])
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pgtenant <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun pgtenant <command> -h for its flags.")
}

func newLogger() *zap.Logger { return buildLogger(os.Getenv("PGTENANT_LOG_FORMAT"), "info") }

// buildLogger: console (coloured, for people) or json (for collectors).
func buildLogger(format, level string) *zap.Logger {
	cfg := zap.NewDevelopmentConfig()
	cfg.DisableStacktrace = true
	cfg.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	if format == "json" {
		cfg = zap.NewProductionConfig()
	}
	if lvl, err := zap.ParseAtomicLevel(level); err == nil {
		cfg.Level = lvl
	}
	log, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return log
}

// envOr returns the environment variable name, or def when it is unset.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
