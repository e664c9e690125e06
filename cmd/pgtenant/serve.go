package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/pgtenant/pgtenant/internal/config"
	"github.com/pgtenant/pgtenant/internal/serve"
)

func runServe(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("config", envOr("PGTENANT_CONFIG", "pgtenant.yaml"), "configuration file (see configs/pgtenant.example.yaml)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if os.Getenv("PGTENANT_LOG_FORMAT") == "" {
		log = buildLogger(cfg.Log.Format, cfg.Log.Level)
	}
	run, err := serve.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down: waiting for clients", zap.Duration("grace", cfg.Timeouts.Shutdown))
		return run.Stop()
	case err := <-run.Done():
		return fmt.Errorf("serve: %w", err)
	}
}
