package migrate

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	amigrate "ariga.io/atlas/sql/migrate"
)

// The revisions table has the Atlas CLI's shape, schema and name, so the CLI
// and pgtenant can each read the history the other wrote.
const (
	revisionSchema = "atlas_schema_revisions"
	revisionTable  = "atlas_schema_revisions"

	createRevisions = `CREATE SCHEMA IF NOT EXISTS "atlas_schema_revisions";
CREATE TABLE IF NOT EXISTS "atlas_schema_revisions"."atlas_schema_revisions" (
    "version" character varying NOT NULL,
    "description" character varying NOT NULL,
    "type" bigint NOT NULL DEFAULT 2,
    "applied" bigint NOT NULL DEFAULT 0,
    "total" bigint NOT NULL DEFAULT 0,
    "executed_at" timestamptz NOT NULL,
    "execution_time" bigint NOT NULL,
    "error" text NULL,
    "error_stmt" text NULL,
    "hash" character varying NOT NULL,
    "partial_hashes" jsonb NULL,
    "operator_version" character varying NOT NULL,
    PRIMARY KEY ("version"))`

	selectRevisions = `SELECT version, description, type, applied, total, executed_at,
    execution_time, coalesce(error, ''), coalesce(error_stmt, ''), hash,
    coalesce(partial_hashes, 'null'::jsonb), operator_version
FROM "atlas_schema_revisions"."atlas_schema_revisions"`
)

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// revisions implements Atlas's RevisionReadWriter over the revisions table.
type revisions struct{ q querier }

var _ amigrate.RevisionReadWriter = revisions{}

func (revisions) Ident() *amigrate.TableIdent {
	return &amigrate.TableIdent{Schema: revisionSchema, Name: revisionTable}
}

func (r revisions) ReadRevisions(ctx context.Context) ([]*amigrate.Revision, error) {
	return r.query(ctx, selectRevisions+` ORDER BY version`)
}

func (r revisions) ReadRevision(ctx context.Context, version string) (*amigrate.Revision, error) {
	revs, err := r.query(ctx, selectRevisions+` WHERE version = $1`, version)
	if err != nil {
		return nil, err
	}
	if len(revs) == 0 {
		return nil, amigrate.ErrRevisionNotExist
	}
	return revs[0], nil
}

func (r revisions) query(ctx context.Context, query string, args ...any) ([]*amigrate.Revision, error) {
	rows, err := r.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*amigrate.Revision
	for rows.Next() {
		var (
			rev     amigrate.Revision
			typ     int64
			elapsed int64
			partial []byte
		)
		if err := rows.Scan(&rev.Version, &rev.Description, &typ, &rev.Applied, &rev.Total,
			&rev.ExecutedAt, &elapsed, &rev.Error, &rev.ErrorStmt, &rev.Hash, &partial,
			&rev.OperatorVersion); err != nil {
			return nil, err
		}
		rev.Type = amigrate.RevisionType(typ)
		rev.ExecutionTime = time.Duration(elapsed)
		if err := json.Unmarshal(partial, &rev.PartialHashes); err != nil {
			return nil, err
		}
		out = append(out, &rev)
	}
	return out, rows.Err()
}

func (r revisions) WriteRevision(ctx context.Context, rev *amigrate.Revision) error {
	var partial any
	if rev.PartialHashes != nil {
		b, err := json.Marshal(rev.PartialHashes)
		if err != nil {
			return err
		}
		partial = string(b)
	}
	_, err := r.q.ExecContext(ctx, `INSERT INTO "atlas_schema_revisions"."atlas_schema_revisions"
    (version, description, type, applied, total, executed_at, execution_time, error, error_stmt, hash, partial_hashes, operator_version)
VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, ''), nullif($9, ''), $10, $11::jsonb, $12)
ON CONFLICT (version) DO UPDATE SET
    description = excluded.description, type = excluded.type, applied = excluded.applied,
    total = excluded.total, executed_at = excluded.executed_at, execution_time = excluded.execution_time,
    error = excluded.error, error_stmt = excluded.error_stmt, hash = excluded.hash,
    partial_hashes = excluded.partial_hashes, operator_version = excluded.operator_version`,
		rev.Version, rev.Description, int64(rev.Type), rev.Applied, rev.Total, rev.ExecutedAt,
		int64(rev.ExecutionTime), rev.Error, rev.ErrorStmt, rev.Hash, partial, rev.OperatorVersion)
	return err
}

func (r revisions) DeleteRevision(ctx context.Context, version string) error {
	res, err := r.q.ExecContext(ctx, `DELETE FROM "atlas_schema_revisions"."atlas_schema_revisions" WHERE version = $1`, version)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errors.New("migrate: no revision " + version)
	}
	return nil
}
