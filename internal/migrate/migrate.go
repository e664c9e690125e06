// Package migrate applies pgtenant's versioned migrations in-process with
// Atlas's migration executor, recording the history in the table the Atlas
// CLI uses. It refuses servers older than PostgreSQL 18 before touching
// anything, verifies atlas.sum, runs each file in its own transaction (a
// failed file leaves no trace), and serialises concurrent runs with an
// advisory lock. It never creates login roles or secrets: that is
// setup-roles' job.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"

	amigrate "ariga.io/atlas/sql/migrate"
	"ariga.io/atlas/sql/postgres"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"go.uber.org/zap"

	"github.com/pgtenant/pgtenant/migrations"
)

// MinServerVersionNum is PostgreSQL 18: the blueprint's keys default to
// uuidv7(), which older servers do not have.
const MinServerVersionNum = 180000

// ServerTooOldError is returned for servers older than PostgreSQL 18.
type ServerTooOldError struct{ Version string }

func (e *ServerTooOldError) Error() string {
	return fmt.Sprintf("PostgreSQL %s is too old: pgtenant's schema needs PostgreSQL 18 or newer, "+
		"because its primary keys default to uuidv7(), which first shipped in PostgreSQL 18", e.Version)
}

// Options tune a run. The zero value applies the embedded migrations.
type Options struct {
	// Dir is the migration directory; nil means the migrations built into
	// the binary.
	Dir amigrate.Dir
	// AllowDirty lets the first run start on a database that already has
	// tables (they must not conflict with the blueprint).
	AllowDirty bool
	Logger     *zap.Logger
	// Operator is recorded in each revision (Atlas records its version).
	Operator string
}

// Result says what a run did.
type Result struct {
	Applied []string // versions applied by this run
	Current string   // latest applied version after the run
}

// lockKey serialises concurrent migrate runs on one database.
const lockKey = 7_363_839_124_001

// Run applies every pending migration to the database at databaseURL.
func Run(ctx context.Context, databaseURL string, opts Options) (Result, error) {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	dir := opts.Dir
	if dir == nil {
		d, err := EmbeddedDir()
		if err != nil {
			return Result{}, err
		}
		dir = d
	}
	db, err := sql.Open("pgx", databaseURL)
	if err != nil {
		return Result{}, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close()

	if err := checkServer(ctx, conn); err != nil {
		return Result{}, err
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		return Result{}, fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey)
	if _, err := conn.ExecContext(ctx, createRevisions); err != nil {
		return Result{}, fmt.Errorf("migrate: create revisions table: %w", err)
	}

	ex, err := executor(conn, dir, opts)
	if err != nil {
		return Result{}, err
	}
	pending, err := ex.Pending(ctx)
	var res Result
	switch {
	case errors.Is(err, amigrate.ErrNoPendingFiles):
		log.Info("database is up to date")
	case err != nil:
		return Result{}, fmt.Errorf("migrate: %w", err)
	}
	for _, f := range pending {
		if err := applyFile(ctx, conn, dir, f, opts); err != nil {
			return res, err
		}
		log.Info("applied migration", zap.String("version", f.Version()), zap.String("file", f.Name()))
		res.Applied = append(res.Applied, f.Version())
	}
	revs, err := revisions{conn}.ReadRevisions(ctx)
	if err != nil {
		return res, err
	}
	if len(revs) > 0 {
		res.Current = revs[len(revs)-1].Version
	}
	return res, nil
}

// applyFile runs one migration file and its revision bookkeeping in one
// transaction, as the Atlas CLI's default --tx-mode file does.
func applyFile(ctx context.Context, conn *sql.Conn, dir amigrate.Dir, f amigrate.File, opts Options) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	ex, err := executor(tx, dir, opts)
	if err != nil {
		tx.Rollback()
		return err
	}
	if err := ex.Execute(ctx, f); err != nil {
		tx.Rollback()
		var stmtErr *amigrate.StmtExecError
		if errors.As(err, &stmtErr) {
			return fmt.Errorf("migrate: %s failed (rolled back, nothing applied): %w\nstatement:\n%s",
				f.Name(), stmtErr.Err, stmtErr.Stmt.Text)
		}
		return fmt.Errorf("migrate: %s: %w", f.Name(), err)
	}
	return tx.Commit()
}

func executor(q querier, dir amigrate.Dir, opts Options) (*amigrate.Executor, error) {
	drv, err := postgres.Open(q)
	if err != nil {
		return nil, err
	}
	return amigrate.NewExecutor(drv, dir, revisions{q},
		amigrate.WithAllowDirty(opts.AllowDirty),
		amigrate.WithOperatorVersion(opts.Operator))
}

func checkServer(ctx context.Context, conn *sql.Conn) error {
	var num int
	var version string
	if err := conn.QueryRowContext(ctx,
		`SELECT current_setting('server_version_num')::int, current_setting('server_version')`).Scan(&num, &version); err != nil {
		return fmt.Errorf("migrate: read server version: %w", err)
	}
	if num < MinServerVersionNum {
		return &ServerTooOldError{Version: version}
	}
	return nil
}

// EmbeddedDir returns the migrations built into the binary.
func EmbeddedDir() (amigrate.Dir, error) {
	dir := &amigrate.MemDir{}
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := migrations.FS.ReadFile(path)
		if err != nil {
			return err
		}
		return dir.WriteFile(path, b)
	})
	return dir, err
}

// WriteSum recomputes atlas.sum of a local migration directory (what
// `atlas migrate hash` does).
func WriteSum(path string) error {
	dir, err := amigrate.NewLocalDir(path)
	if err != nil {
		return err
	}
	sum, err := dir.Checksum()
	if err != nil {
		return err
	}
	return amigrate.WriteSumFile(dir, sum)
}
