package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/pgtenant/pgtenant/internal/devenv"
)

func runDev(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	dir := fs.String("dir", ".pgtenant/dev", "state directory (data, generated secrets)")
	binDir := fs.String("pg-bin", envOr("PG_BIN", ""), "PostgreSQL 18 bin directory (default $PG_BIN)")
	port := fs.Int("pg-port", 54329, "PostgreSQL port on 127.0.0.1")
	db := fs.String("database", "pgtenant", "database name")
	listen := fs.String("listen", "127.0.0.1:6432", "the proxy's address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *binDir == "" {
		return errors.New("dev: no PostgreSQL 18: set PG_BIN or use `make dev`, which provisions it")
	}
	env, err := devenv.Start(ctx, log, devenv.Options{Dir: *dir, BinDir: *binDir, Port: *port, Database: *db, Listen: *listen})
	if err != nil {
		return err
	}
	env.PrintInstructions(os.Stdout)
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case <-env.Cluster.Done():
		env.Stop()
		return errors.New("dev: PostgreSQL exited unexpectedly; see its log in the data directory")
	case err := <-env.Proxy.Done():
		env.Stop()
		return fmt.Errorf("dev: the proxy stopped: %v", err)
	}
	return env.Stop()
}
