package proxy

import (
	"strings"
	"unicode/utf8"

	"github.com/pgtenant/pgtenant/proxy/copyfrom"
)

// stmtKind classifies a statement by what it does to the transaction. The
// proxy never relies on this for isolation (Postgres enforces that); it uses
// it to place the tenant context and to give early, clear errors.
type stmtKind uint8

const (
	kindOther         stmtKind = iota
	kindBegin                  // BEGIN, START TRANSACTION
	kindCommit                 // COMMIT, END, COMMIT AND NO CHAIN
	kindRollback               // ROLLBACK, ABORT (not ROLLBACK TO SAVEPOINT)
	kindCommitChain            // COMMIT AND CHAIN, END AND CHAIN
	kindRollbackChain          // ROLLBACK AND CHAIN, ABORT AND CHAIN
	kindPrepareTxn             // PREPARE TRANSACTION
	kindNoTxBlock              // cannot run inside a transaction block
	kindSessionOnly            // needs a session of its own (refused in transaction mode)
	kindDeallocate             // DEALLOCATE: answered by the proxy
	kindEmpty                  // only whitespace and comments
	kindCopyFrom               // COPY … FROM STDIN: answered by the proxy with INSERTs
)

// statement is one statement of a query string.
type statement struct {
	kind stmtKind
	// start and end are byte offsets: start of the first token, and end of
	// the last token including the terminating semicolon if there is one.
	start, end int
	semicolon  bool
	// why names the statement for kindNoTxBlock and kindSessionOnly
	// errors; hint says what to do instead.
	why, hint string
}

// splitStatements splits a simple-query string into statements the way the
// server's lexer does for the purposes that matter here: quotes (”, "",
// E”, $tag$…$tag$), comments (--, nested /* */) and semicolons. It never
// fails; text it cannot make sense of stays in one statement and the
// server reports the syntax error.
func splitStatements(sql string) []statement {
	var out []statement
	start := -1   // start of the current statement's first token
	lastEnd := -1 // end of the current statement's last token
	parens := 0   // semicolons inside parentheses do not end statements (CREATE RULE … (a; b))
	flush := func(end int, semicolon bool) {
		if start >= 0 {
			out = append(out, statement{start: start, end: end, semicolon: semicolon})
		}
		start, lastEnd, parens = -1, -1, 0
	}
	i := 0
	for i < len(sql) {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
			continue
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
			continue
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			i = skipBlockComment(sql, i)
			continue
		case c == ';' && parens == 0:
			if start >= 0 {
				flush(i+1, true)
			}
			i++
			continue
		}
		if start < 0 {
			start = i
		}
		switch {
		case c == '(':
			parens++
			i++
		case c == ')':
			if parens > 0 {
				parens--
			}
			i++
		case c == '\'':
			i = skipQuoted(sql, i, '\'', isEscapeString(sql, i))
		case c == '"':
			i = skipQuoted(sql, i, '"', false)
		case c == '$':
			i = skipDollar(sql, i)
		default:
			i = skipWord(sql, i)
		}
		lastEnd = i
	}
	if start >= 0 {
		flush(lastEnd, false)
	}
	for k := range out {
		text := sql[out[k].start:out[k].end]
		out[k].kind, out[k].why = classify(text)
		switch {
		case out[k].kind == kindSessionOnly && (out[k].why == "PREPARE" || out[k].why == "EXECUTE"):
			out[k].why = "SQL-level " + out[k].why
			out[k].hint = "Use your driver's prepared statements (the protocol's Parse/Bind), which pgtenant keeps per client."
		case out[k].kind == kindOther && (containsFold(text, "pg_advisory_lock") || containsFold(text, "pg_try_advisory_lock")):
			out[k].kind, out[k].why = kindSessionOnly, "a session-level advisory lock"
			out[k].hint = "Use pg_advisory_xact_lock or pg_try_advisory_xact_lock, released at the end of the transaction."
		}
	}
	return out
}

// containsFold reports whether s contains the lower-case ASCII needle,
// ignoring case, without allocating.
func containsFold(s, needle string) bool {
	for i := 0; i+len(needle) <= len(s); i++ {
		if s[i]|0x20 == needle[0] && strings.EqualFold(s[i:i+len(needle)], needle) {
			return true
		}
	}
	return false
}

func skipBlockComment(sql string, i int) int {
	depth := 0
	for i < len(sql) {
		switch {
		case strings.HasPrefix(sql[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(sql[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return i
}

// isEscapeString reports whether the quote at i opens an E” string, in
// which backslash escapes the next character.
func isEscapeString(sql string, i int) bool {
	if i == 0 || (sql[i-1] != 'e' && sql[i-1] != 'E') {
		return false
	}
	return i == 1 || !isIdentChar(sql[i-2])
}

func skipQuoted(sql string, i int, q byte, backslash bool) int {
	i++
	for i < len(sql) {
		switch c := sql[i]; {
		case backslash && c == '\\':
			i += 2
		case c == q:
			if i+1 < len(sql) && sql[i+1] == q { // doubled quote
				i += 2
				continue
			}
			return i + 1
		default:
			i++
		}
	}
	return len(sql)
}

// skipDollar skips $tag$…$tag$, or a $1 parameter / lone $.
func skipDollar(sql string, i int) int {
	j := i + 1
	for j < len(sql) && sql[j] != '$' && isIdentChar(sql[j]) && !(j == i+1 && sql[j] >= '0' && sql[j] <= '9') {
		j++
	}
	if j >= len(sql) || sql[j] != '$' {
		// A parameter ($1) or an identifier character run containing $.
		j = i + 1
		for j < len(sql) && (sql[j] >= '0' && sql[j] <= '9') {
			j++
		}
		return j
	}
	tag := sql[i : j+1]
	end := strings.Index(sql[j+1:], tag)
	if end < 0 {
		return len(sql)
	}
	return j + 1 + end + len(tag)
}

func isIdentChar(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func skipWord(sql string, i int) int {
	if !isIdentChar(sql[i]) {
		_, size := utf8.DecodeRuneInString(sql[i:])
		return i + size
	}
	for i < len(sql) && isIdentChar(sql[i]) && sql[i] != '$' {
		i++
	}
	// An identifier may contain $ after its first character (a$b); E'…' is
	// handled by the caller seeing the quote next.
	for i < len(sql) && isIdentChar(sql[i]) {
		i++
	}
	return i
}

// keywords returns up to n leading upper-cased words of a statement,
// skipping comments.
func keywords(stmt string, n int) []string {
	var words []string
	i := 0
	for i < len(stmt) && len(words) < n {
		c := stmt[i]
		switch {
		case c == '-' && strings.HasPrefix(stmt[i:], "--"):
			for i < len(stmt) && stmt[i] != '\n' {
				i++
			}
		case c == '/' && strings.HasPrefix(stmt[i:], "/*"):
			i = skipBlockComment(stmt, i)
		case (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_':
			j := i
			for j < len(stmt) && isIdentChar(stmt[j]) {
				j++
			}
			words = append(words, strings.ToUpper(stmt[i:j]))
			i = j
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		default:
			return words
		}
	}
	return words
}

func classify(stmt string) (stmtKind, string) {
	w := keywords(stmt, 6)
	if len(w) == 0 {
		return kindEmpty, ""
	}
	at := func(k int) string {
		if k < len(w) {
			return w[k]
		}
		return ""
	}
	chain := func(from int) bool {
		for k := from; k+1 < len(w); k++ {
			if w[k] == "AND" {
				return w[k+1] == "CHAIN"
			}
		}
		return false
	}
	switch w[0] {
	case "BEGIN":
		return kindBegin, ""
	case "START":
		if at(1) == "TRANSACTION" {
			return kindBegin, ""
		}
	case "COMMIT", "END":
		switch at(1) {
		case "PREPARED":
			return kindNoTxBlock, "COMMIT PREPARED"
		}
		if chain(1) {
			return kindCommitChain, ""
		}
		return kindCommit, ""
	case "ROLLBACK", "ABORT":
		switch at(1) {
		case "PREPARED":
			return kindNoTxBlock, "ROLLBACK PREPARED"
		case "TO":
			return kindOther, "" // ROLLBACK TO SAVEPOINT stays inside the block
		case "WORK", "TRANSACTION":
			if at(2) == "TO" {
				return kindOther, ""
			}
		}
		if chain(1) {
			return kindRollbackChain, ""
		}
		return kindRollback, ""
	case "PREPARE":
		if at(1) == "TRANSACTION" {
			return kindPrepareTxn, "PREPARE TRANSACTION"
		}
		return kindSessionOnly, "PREPARE"
	case "EXECUTE":
		return kindSessionOnly, "EXECUTE"
	case "DEALLOCATE":
		return kindDeallocate, ""
	case "COPY":
		if copyfrom.IsCopyFromStdin(stmt) {
			return kindCopyFrom, "COPY FROM STDIN"
		}
	case "VACUUM":
		return kindNoTxBlock, "VACUUM"
	case "CHECKPOINT":
		return kindOther, ""
	case "ALTER":
		if at(1) == "SYSTEM" {
			return kindNoTxBlock, "ALTER SYSTEM"
		}
		if at(1) == "DATABASE" && strings.Contains(strings.ToUpper(stmt), "TABLESPACE") {
			return kindNoTxBlock, "ALTER DATABASE … SET TABLESPACE"
		}
	case "CREATE", "DROP":
		switch at(1) {
		case "DATABASE", "TABLESPACE":
			return kindNoTxBlock, w[0] + " " + at(1)
		case "SUBSCRIPTION":
			return kindNoTxBlock, w[0] + " SUBSCRIPTION"
		case "INDEX":
			if at(2) == "CONCURRENTLY" {
				return kindNoTxBlock, w[0] + " INDEX CONCURRENTLY"
			}
		case "UNIQUE":
			if at(2) == "INDEX" && at(3) == "CONCURRENTLY" {
				return kindNoTxBlock, "CREATE INDEX CONCURRENTLY"
			}
		}
	case "REINDEX":
		if at(1) == "DATABASE" || at(1) == "SYSTEM" || strings.Contains(strings.ToUpper(stmt), "CONCURRENTLY") {
			return kindNoTxBlock, "REINDEX " + at(1)
		}
	case "CLUSTER":
		if len(w) == 1 || at(1) == "VERBOSE" && len(w) == 2 {
			return kindNoTxBlock, "CLUSTER without a table"
		}
	case "DISCARD":
		if at(1) == "ALL" {
			return kindNoTxBlock, "DISCARD ALL"
		}
	case "LISTEN", "UNLISTEN":
		return kindSessionOnly, w[0]
	}
	return kindOther, ""
}
