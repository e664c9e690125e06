package proxy

import (
	"sort"
	"strings"
)

// Session settings in transaction mode. A client's session-level SET and
// RESET are remembered and replayed as SET LOCAL at the start of each of its
// transactions (each loan of a server connection ends with RESET ALL), so a
// setting behaves as on a session of its own and never reaches another
// client. Settings that control identity
// or security are refused: the proxy sets them.

type changeKind uint8

const (
	changeNone changeKind = iota
	changeSet
	changeReset
	changeResetAll
	changeMany // several settings at once (SET SESSION CHARACTERISTICS)
)

// settingChange is what one statement does to the session's settings.
type settingChange struct {
	kind   changeKind
	name   string // canonical (lower-case) parameter name
	replay string // SET LOCAL statement reproducing the setting
	many   []settingChange
}

// parseSetting recognises session-level SET/RESET statements. It returns a
// refusal for settings the client may not change through the proxy.
func parseSetting(stmt string) (settingChange, *pgError) {
	w := keywords(stmt, 3)
	if len(w) == 0 {
		return settingChange{}, nil
	}
	switch w[0] {
	case "SET":
		rest := afterWord(stmt, 1)
		if len(w) > 1 {
			switch w[1] {
			case "LOCAL", "TRANSACTION", "CONSTRAINTS":
				return settingChange{}, nil // lasts for the transaction only
			case "ROLE":
				return settingChange{}, refuseSetting("role")
			case "SESSION":
				if len(w) > 2 {
					switch w[2] {
					case "AUTHORIZATION":
						return settingChange{}, refuseSetting("session_authorization")
					case "CHARACTERISTICS":
						return sessionCharacteristics(stmt), nil
					}
				}
				rest = afterWord(stmt, 2)
			}
		}
		name := settingName(rest)
		switch {
		case strings.HasPrefix(strings.ToUpper(rest), "TIME ZONE"):
			name = "timezone"
		case strings.HasPrefix(strings.ToUpper(rest), "SCHEMA"):
			name = "search_path"
		case strings.HasPrefix(strings.ToUpper(rest), "NAMES"):
			name = "client_encoding"
		}
		if e := forbiddenSetting(name); e != nil {
			return settingChange{}, e
		}
		if name == "" {
			return settingChange{}, nil // let the server report the syntax error
		}
		return settingChange{kind: changeSet, name: name, replay: "SET LOCAL " + rest}, nil
	case "RESET":
		if len(w) > 1 && w[1] == "ALL" {
			return settingChange{kind: changeResetAll}, nil
		}
		rest := afterWord(stmt, 1)
		name := settingName(rest)
		if strings.HasPrefix(strings.ToUpper(rest), "TIME ZONE") {
			name = "timezone"
		}
		switch {
		case name == "role" || name == "session" || strings.HasPrefix(name, "erun."):
			// Harmless to run (Postgres enforces what it means); nothing
			// to remember.
			return settingChange{}, nil
		case name == "":
			return settingChange{}, nil
		}
		return settingChange{kind: changeReset, name: name}, nil
	}
	return settingChange{}, nil
}

// afterWord returns stmt after its first n words and the spaces that follow.
func afterWord(stmt string, n int) string {
	s := strings.TrimSpace(stmt)
	for range n {
		i := strings.IndexAny(s, " \t\r\n")
		if i < 0 {
			return ""
		}
		s = strings.TrimSpace(s[i:])
	}
	return strings.TrimSuffix(strings.TrimSpace(s), ";")
}

// settingName reads a (possibly dotted, possibly quoted) parameter name.
func settingName(s string) string {
	name, _ := scanSettingName(s)
	return name
}

// scanSettingName returns the parameter name that starts s, and its length
// in s ("" if a quote is not closed).
func scanSettingName(s string) (string, int) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return "", len(s)
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '.' || isIdentChar(c):
			b.WriteByte(c | 0x20*byte(boolInt(c >= 'A' && c <= 'Z')))
		default:
			return b.String(), i
		}
	}
	return b.String(), len(s)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func forbiddenSetting(name string) *pgError {
	switch {
	case name == "role", name == "session_authorization", strings.HasPrefix(name, "erun."):
		return refuseSetting(name)
	case name == "client_encoding":
		return &pgError{Code: "0A000", Message: "client_encoding cannot be changed through pgtenant: its server connections are shared and use UTF8",
			Hint: "Use UTF8."}
	case strings.HasPrefix(name, "transaction_"):
		return &pgError{Code: "0A000", Message: "SET " + name + " at session level is not supported in pgtenant's transaction mode",
			Hint: "Use SET TRANSACTION or BEGIN … inside a transaction."}
	}
	return nil
}

func refuseSetting(name string) *pgError {
	return &pgError{Code: "42501",
		Message: "pgtenant: " + name + " cannot be set by a client: pgtenant sets it for every transaction (transaction mode, tenant isolation)",
		Hint:    "The role and tenant come from the credential used to connect."}
}

// settings is a client's session settings, replayed in order of name.
type settings map[string]string

func (s settings) clone() settings {
	c := make(settings, len(s))
	for k, v := range s {
		c[k] = v
	}
	return c
}

func (s settings) apply(ch settingChange) {
	switch ch.kind {
	case changeSet:
		s[ch.name] = ch.replay
	case changeReset:
		delete(s, ch.name)
	case changeResetAll:
		for k := range s {
			delete(s, k)
		}
	case changeMany:
		for _, c := range ch.many {
			s.apply(c)
		}
	}
}

// sessionCharacteristics reads SET SESSION CHARACTERISTICS AS TRANSACTION
// modes: the session defaults default_transaction_isolation, _read_only and
// _deferrable, which JDBC's setTransactionIsolation sets this way. A
// malformed one is left to the server to report.
func sessionCharacteristics(stmt string) settingChange {
	w := strings.FieldsFunc(strings.ToUpper(strings.TrimSuffix(strings.TrimSpace(stmt), ";")), func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	if len(w) < 5 || w[3] != "AS" || w[4] != "TRANSACTION" {
		return settingChange{}
	}
	ch := settingChange{kind: changeMany}
	set := func(name, value string) {
		ch.many = append(ch.many, settingChange{kind: changeSet, name: name, replay: "SET LOCAL " + name + " = '" + value + "'"})
	}
	for i := 5; i < len(w); i++ {
		next := func(k int) string {
			if i+k < len(w) {
				return w[i+k]
			}
			return ""
		}
		switch {
		case w[i] == "ISOLATION" && next(1) == "LEVEL":
			switch next(2) {
			case "SERIALIZABLE":
				set("default_transaction_isolation", "serializable")
				i += 2
			case "REPEATABLE", "READ":
				set("default_transaction_isolation", strings.ToLower(next(2)+" "+next(3)))
				i += 3
			default:
				return settingChange{}
			}
		case w[i] == "READ" && (next(1) == "ONLY" || next(1) == "WRITE"):
			set("default_transaction_read_only", map[bool]string{true: "on", false: "off"}[next(1) == "ONLY"])
			i++
		case w[i] == "DEFERRABLE":
			set("default_transaction_deferrable", "on")
		case w[i] == "NOT" && next(1) == "DEFERRABLE":
			set("default_transaction_deferrable", "off")
			i++
		default:
			return settingChange{}
		}
	}
	if len(ch.many) == 0 {
		return settingChange{}
	}
	return ch
}

// transactionModes maps the session defaults of transaction
// characteristics to the settings of the transaction itself. Setting a
// default with SET LOCAL inside a transaction that has begun does not
// change that transaction, so the frame sets both.
// The keyword is what a BEGIN gives to choose the mode itself.
var transactionModes = []struct {
	def, cur string
	keywords []string
}{
	{"default_transaction_deferrable", "transaction_deferrable", []string{"DEFERRABLE"}},
	{"default_transaction_isolation", "transaction_isolation", []string{"ISOLATION"}},
	{"default_transaction_read_only", "transaction_read_only", []string{"READ ONLY", "READ WRITE"}},
}

// transactionMode is one default characteristic to apply to a transaction.
type transactionMode struct {
	set      string // SET LOCAL transaction_… = the default
	keywords []string
}

// modes returns the SET LOCAL statements that give the current transaction
// the client's default characteristics.
func (s settings) modes() []transactionMode {
	var out []transactionMode
	for _, m := range transactionModes {
		replay, ok := s[m.def]
		if !ok {
			continue
		}
		rest := strings.TrimPrefix(replay, "SET LOCAL ")
		_, n := scanSettingName(rest)
		value := rest[n:] // "= 'serializable'", "TO on", …
		if strings.HasSuffix(strings.ToUpper(strings.TrimSpace(value)), "DEFAULT") {
			continue
		}
		out = append(out, transactionMode{set: "SET LOCAL " + m.cur + value, keywords: m.keywords})
	}
	return out
}

// replay is the SET LOCAL list, and how many statements it has.
func (s settings) replay() (string, int) {
	if len(s) == 0 {
		return "", 0
	}
	names := make([]string, 0, len(s))
	for k := range s {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString("; ")
		b.WriteString(s[k])
	}
	return b.String(), len(names)
}

// startupSettings turns a client's start-up parameters into settings.
func startupSettings(params map[string]string) (settings, *pgError) {
	s := settings{}
	for k, v := range params {
		name := strings.ToLower(k)
		switch name {
		case "user", "database", "replication":
			if name == "replication" && v != "false" && v != "0" && v != "off" {
				return nil, &pgError{Code: "0A000", Message: "replication connections are not supported by pgtenant"}
			}
			continue
		case "client_encoding":
			// asyncpg sends 'utf-8', quotes included.
			enc := strings.ReplaceAll(strings.Trim(strings.TrimSpace(v), `'"`), "-", "")
			if !strings.EqualFold(enc, "utf8") && !strings.EqualFold(enc, "unicode") {
				return nil, forbiddenSetting(name)
			}
			continue
		case "options":
			for _, opt := range splitOptions(v) {
				n, val, ok := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(opt, "-c"), "--"), "=")
				if !ok {
					continue
				}
				n = strings.ToLower(strings.TrimSpace(strings.ReplaceAll(n, "-", "_")))
				if e := forbiddenSetting(n); e != nil {
					return nil, e
				}
				s[n] = "SET LOCAL " + quoteIdent(n) + " = " + quoteLiteral(val)
			}
			continue
		}
		if strings.HasPrefix(name, "_pq_.") {
			continue
		}
		if e := forbiddenSetting(name); e != nil {
			return nil, e
		}
		s[name] = "SET LOCAL " + quoteIdent(name) + " = " + quoteLiteral(v)
	}
	return s, nil
}

// splitOptions splits the options start-up parameter: "-c a=b -c c=d" or
// "-ca=b --c=d", with backslash escaping spaces.
func splitOptions(v string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && i+1 < len(v):
			i++
			cur.WriteByte(v[i])
		case c == ' ' || c == '\t':
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	// "-c" "a=b" -> "-ca=b"
	var merged []string
	for i := 0; i < len(out); i++ {
		if out[i] == "-c" && i+1 < len(out) {
			merged = append(merged, "-c"+out[i+1])
			i++
			continue
		}
		merged = append(merged, out[i])
	}
	return merged
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
