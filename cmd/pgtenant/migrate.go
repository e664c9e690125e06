package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	amigrate "ariga.io/atlas/sql/migrate"
	"go.uber.org/zap"

	"github.com/pgtenant/pgtenant/internal/migrate"
)

func runMigrate(ctx context.Context, log *zap.Logger, args []string) error {
	if len(args) > 0 && args[0] == "hash" {
		fs := flag.NewFlagSet("migrate hash", flag.ContinueOnError)
		dir := fs.String("dir", "migrations", "migration directory whose atlas.sum to rewrite")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return migrate.WriteSum(*dir)
	}
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	url := fs.String("database-url", envOr("DATABASE_URL", ""), "database to migrate (default $DATABASE_URL)")
	dir := fs.String("dir", "", "migration directory (default: the migrations built into pgtenant)")
	allowDirty := fs.Bool("allow-dirty", false, "allow the first run on a database that already has tables")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		return errors.New("migrate: give --database-url or set DATABASE_URL")
	}
	opts := migrate.Options{AllowDirty: *allowDirty, Logger: log, Operator: "pgtenant " + version}
	if *dir != "" {
		d, err := amigrate.NewLocalDir(*dir)
		if err != nil {
			return err
		}
		opts.Dir = d
	}
	res, err := migrate.Run(ctx, *url, opts)
	if err != nil {
		return err
	}
	if len(res.Applied) == 0 {
		fmt.Printf("database is up to date (version %s)\n", res.Current)
	} else {
		fmt.Printf("applied %d migration(s); database is at version %s\n", len(res.Applied), res.Current)
	}
	return nil
}
