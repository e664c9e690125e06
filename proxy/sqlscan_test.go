package proxy

import (
	"strings"
	"testing"
)

func TestSplitStatements(t *testing.T) {
	cases := []struct {
		sql   string
		want  []string // statement texts
		kinds []stmtKind
	}{
		{"SELECT 1", []string{"SELECT 1"}, []stmtKind{kindOther}},
		{"SELECT 1;", []string{"SELECT 1;"}, []stmtKind{kindOther}},
		{"  select 1 ; select 2  ", []string{"select 1 ;", "select 2"}, []stmtKind{kindOther, kindOther}},
		{"SELECT 1 -- trailing; comment", []string{"SELECT 1"}, []stmtKind{kindOther}},
		{"SELECT 1 /* a; /* nested; */ b */", []string{"SELECT 1"}, []stmtKind{kindOther}},
		{"SELECT ';', \"a;b\", E'\\';'; COMMIT", []string{"SELECT ';', \"a;b\", E'\\';';", "COMMIT"}, []stmtKind{kindOther, kindCommit}},
		{"SELECT 'it''s; fine'; END", []string{"SELECT 'it''s; fine';", "END"}, []stmtKind{kindOther, kindCommit}},
		{"DO $$ BEGIN PERFORM 1; END $$; SELECT 2", []string{"DO $$ BEGIN PERFORM 1; END $$;", "SELECT 2"}, []stmtKind{kindOther, kindOther}},
		{"DO $x$ a; $y$ b; $y$ $x$", []string{"DO $x$ a; $y$ b; $y$ $x$"}, []stmtKind{kindOther}},
		{"SELECT $1::int; SELECT a$b FROM t", []string{"SELECT $1::int;", "SELECT a$b FROM t"}, []stmtKind{kindOther, kindOther}},
		{"CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)", []string{"CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)"}, []stmtKind{kindOther}},
		{";;  ; -- only comments", nil, nil},
		{"begin isolation level serializable; select 1; commit", []string{"begin isolation level serializable;", "select 1;", "commit"}, []stmtKind{kindBegin, kindOther, kindCommit}},
		{"START TRANSACTION READ ONLY", []string{"START TRANSACTION READ ONLY"}, []stmtKind{kindBegin}},
		{"/* lead */ COMMIT AND CHAIN", []string{"COMMIT AND CHAIN"}, []stmtKind{kindCommitChain}},
		{"rollback and chain", []string{"rollback and chain"}, []stmtKind{kindRollbackChain}},
		{"ROLLBACK AND NO CHAIN", []string{"ROLLBACK AND NO CHAIN"}, []stmtKind{kindRollback}},
		{"ROLLBACK TO SAVEPOINT a", []string{"ROLLBACK TO SAVEPOINT a"}, []stmtKind{kindOther}},
		{"ROLLBACK WORK TO a", []string{"ROLLBACK WORK TO a"}, []stmtKind{kindOther}},
		{"ABORT", []string{"ABORT"}, []stmtKind{kindRollback}},
		{"PREPARE TRANSACTION 'x'", []string{"PREPARE TRANSACTION 'x'"}, []stmtKind{kindPrepareTxn}},
		{"PREPARE p AS SELECT 1", []string{"PREPARE p AS SELECT 1"}, []stmtKind{kindSessionOnly}},
		{"EXECUTE p(1)", []string{"EXECUTE p(1)"}, []stmtKind{kindSessionOnly}},
		{"DEALLOCATE ALL", []string{"DEALLOCATE ALL"}, []stmtKind{kindDeallocate}},
		{"SELECT PG_ADVISORY_LOCK(1)", []string{"SELECT PG_ADVISORY_LOCK(1)"}, []stmtKind{kindSessionOnly}},
		{"SELECT pg_try_advisory_lock_shared(1, 2)", []string{"SELECT pg_try_advisory_lock_shared(1, 2)"}, []stmtKind{kindSessionOnly}},
		{"SELECT pg_advisory_xact_lock(1)", []string{"SELECT pg_advisory_xact_lock(1)"}, []stmtKind{kindOther}},
		{"SELECT pg_advisory_unlock_all()", []string{"SELECT pg_advisory_unlock_all()"}, []stmtKind{kindOther}},
		{"VACUUM ANALYZE t", []string{"VACUUM ANALYZE t"}, []stmtKind{kindNoTxBlock}},
		{"create index concurrently i on t (a)", []string{"create index concurrently i on t (a)"}, []stmtKind{kindNoTxBlock}},
		{"CREATE UNIQUE INDEX CONCURRENTLY i ON t (a)", []string{"CREATE UNIQUE INDEX CONCURRENTLY i ON t (a)"}, []stmtKind{kindNoTxBlock}},
		{"CREATE INDEX i ON t (a)", []string{"CREATE INDEX i ON t (a)"}, []stmtKind{kindOther}},
		{"DISCARD ALL", []string{"DISCARD ALL"}, []stmtKind{kindNoTxBlock}},
		{"LISTEN chan", []string{"LISTEN chan"}, []stmtKind{kindSessionOnly}},
		{"COMMIT PREPARED 'x'", []string{"COMMIT PREPARED 'x'"}, []stmtKind{kindNoTxBlock}},
		{"SELECT 'unterminated", []string{"SELECT 'unterminated"}, []stmtKind{kindOther}},
		{"SELECT 1 /* unterminated", []string{"SELECT 1"}, []stmtKind{kindOther}},
		{"SELECT 'ü;'; SELECT 2", []string{"SELECT 'ü;';", "SELECT 2"}, []stmtKind{kindOther, kindOther}},
	}
	for _, c := range cases {
		got := splitStatements(c.sql)
		var texts []string
		var kinds []stmtKind
		for _, s := range got {
			texts = append(texts, c.sql[s.start:s.end])
			kinds = append(kinds, s.kind)
		}
		if strings.Join(texts, "|") != strings.Join(c.want, "|") {
			t.Errorf("split(%q) = %q, want %q", c.sql, texts, c.want)
			continue
		}
		for k := range kinds {
			if kinds[k] != c.kinds[k] {
				t.Errorf("split(%q)[%d] kind = %d, want %d", c.sql, k, kinds[k], c.kinds[k])
			}
		}
	}
}

// FuzzSplitStatements: whatever bytes a client sends, the scanner returns
// ordered, non-overlapping, non-empty ranges inside the input, and each
// statement with a semicolon ends in one.
func FuzzSplitStatements(f *testing.F) {
	for _, s := range []string{"SELECT 1; COMMIT", "DO $$ a; $$", "E'\\'';'", "/* /* */ ; */", "$1$$", "BEGIN; SET x = 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		prev := 0
		for _, s := range splitStatements(sql) {
			if s.start < prev || s.end <= s.start || s.end > len(sql) {
				t.Fatalf("bad range [%d,%d) after %d in %q", s.start, s.end, prev, sql)
			}
			if s.semicolon && sql[s.end-1] != ';' {
				t.Fatalf("statement [%d,%d) of %q claims a semicolon", s.start, s.end, sql)
			}
			prev = s.end
		}
	})
}
