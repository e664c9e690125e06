// Package copyfrom reads COPY … FROM STDIN: the statement's target and
// options, and the rows of its data in text, csv or binary format.
//
// PostgreSQL refuses COPY FROM on a table with row-level security, so the
// proxy turns the rows into INSERTs that RLS checks like any other. This
// package does the reading; it knows nothing about the wire protocol.
package copyfrom

import (
	"fmt"
	"strings"
)

// Format is the data format of a COPY.
type Format uint8

const (
	Text Format = iota
	CSV
	Binary
)

func (f Format) String() string {
	return [...]string{"text", "csv", "binary"}[f]
}

// HeaderMode says what the first line of text or csv data is.
type HeaderMode uint8

const (
	NoHeader    HeaderMode = iota
	SkipHeader             // HEADER true: the first line is ignored
	MatchHeader            // HEADER MATCH: it must name the columns
)

// Options are the COPY options that shape the data.
type Options struct {
	Format    Format
	Delimiter byte
	Null      string
	Header    HeaderMode
	Quote     byte
	Escape    byte
	// ForceNotNull and ForceNull hold column names; the All flags stand
	// for `*`.
	ForceNotNull    []string
	ForceNotNullAll bool
	ForceNull       []string
	ForceNullAll    bool
}

// Statement is a COPY … FROM STDIN.
type Statement struct {
	// Table is the target as written: one to three identifiers, each
	// quoted or not, joined by dots. It is safe to splice into SQL.
	Table string
	// Columns are the column list as written (spliceable), and Names the
	// same columns as PostgreSQL names them (unquoted, folded).
	Columns []string
	Names   []string
	Options
}

// Error is a statement PostgreSQL would reject, or one pgtenant cannot
// translate; Code is its SQLSTATE.
type Error struct {
	Code    string
	Message string
	Hint    string
}

func (e *Error) Error() string { return e.Message }

func syntaxError(format string, a ...any) *Error {
	return &Error{Code: "42601", Message: fmt.Sprintf(format, a...)}
}

func unsupported(what, hint string) *Error {
	return &Error{Code: "0A000", Message: what + " is not supported through pgtenant", Hint: hint}
}

// IsCopyFromStdin reports whether sql is a COPY … FROM STDIN, without
// judging the rest of it.
func IsCopyFromStdin(sql string) bool {
	toks, err := tokenize(sql)
	if err != nil || len(toks) < 4 || !toks[0].is("COPY") || toks[1].text == "(" {
		return false
	}
	for i := 1; i+1 < len(toks); i++ {
		if toks[i].is("FROM") && (toks[i+1].is("STDIN") || toks[i+1].is("PROGRAM") || toks[i+1].kind == tokString) {
			return toks[i+1].is("STDIN")
		}
		if toks[i].is("TO") {
			return false
		}
	}
	return false
}

// Parse reads a COPY statement. It returns ok=false if sql is not a COPY
// … FROM STDIN (COPY TO, COPY FROM a file or program), and an *Error if
// it is one that cannot be run.
func Parse(sql string) (st *Statement, ok bool, err error) {
	toks, terr := tokenize(sql)
	if terr != nil || !IsCopyFromStdin(sql) {
		return nil, false, nil
	}
	p := &parser{toks: toks}
	st = &Statement{}
	p.next() // COPY
	binary := false
	if p.peek().is("BINARY") {
		binary = true
		p.next()
	}
	if st.Table, err = p.qualifiedName(); err != nil {
		return nil, true, err
	}
	if p.peek().kind == tokPunct && p.peek().text == "(" {
		p.next()
		for {
			t := p.next()
			if t.kind != tokIdent {
				return nil, true, syntaxError("syntax error in the column list of COPY at %q", t.text)
			}
			st.Columns = append(st.Columns, t.text)
			st.Names = append(st.Names, t.name)
			if s := p.next(); s.text == ")" {
				break
			} else if s.text != "," {
				return nil, true, syntaxError("syntax error in the column list of COPY at %q", s.text)
			}
		}
	}
	p.next() // FROM
	p.next() // STDIN
	o := optionSet{}
	if binary {
		o.set("format", "binary")
	}
	if err := p.options(&o); err != nil {
		return nil, true, err
	}
	if t := p.peek(); t.is("WHERE") {
		return nil, true, unsupported("COPY FROM … WHERE", "Filter the data before sending it, or COPY into a table you then INSERT … SELECT from.")
	}
	if p.peek().text == ";" {
		p.next()
	}
	if t := p.next(); t.kind != tokEOF {
		return nil, true, syntaxError("syntax error at or near %q", t.text)
	}
	if err := o.resolve(&st.Options, st.Names); err != nil {
		return nil, true, err
	}
	return st, true, nil
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return token{kind: tokEOF}
}

func (p *parser) next() token {
	t := p.peek()
	if p.i < len(p.toks) {
		p.i++
	}
	return t
}

func (p *parser) qualifiedName() (string, error) {
	var parts []string
	for {
		t := p.next()
		if t.kind != tokIdent {
			return "", syntaxError("COPY needs a table name, found %q", t.text)
		}
		parts = append(parts, t.text)
		if p.peek().text != "." || len(parts) == 3 {
			return strings.Join(parts, "."), nil
		}
		p.next()
	}
}

// options reads the options after STDIN: the parenthesised list, or the
// older unparenthesised keywords (which psycopg2's copy_from still sends).
func (p *parser) options(o *optionSet) error {
	if p.peek().is("USING") || p.peek().is("DELIMITERS") {
		if p.peek().is("USING") {
			p.next()
		}
		p.next()
		s := p.next()
		if s.kind != tokString {
			return syntaxError("DELIMITERS needs a string")
		}
		o.set("delimiter", s.name)
	}
	if p.peek().is("WITH") {
		p.next()
	}
	if p.peek().text == "(" {
		p.next()
		for {
			name := p.next()
			if name.kind != tokIdent {
				return syntaxError("syntax error in COPY options at %q", name.text)
			}
			key := strings.ToLower(name.name)
			val := p.peek()
			switch {
			case val.text == "," || val.text == ")":
				o.set(key, "")
			case val.text == "(":
				p.next()
				cols, err := p.nameList(true)
				if err != nil {
					return err
				}
				o.setList(key, cols)
			case val.text == "*":
				p.next()
				o.set(key, "*")
			case val.kind == tokString || val.kind == tokIdent || val.kind == tokNumber:
				p.next()
				o.set(key, val.name)
			default:
				return syntaxError("syntax error in COPY options at %q", val.text)
			}
			if s := p.next(); s.text == ")" {
				return nil
			} else if s.text != "," {
				return syntaxError("syntax error in COPY options at %q", s.text)
			}
		}
	}
	for {
		t := p.peek()
		switch {
		case t.is("BINARY"):
			o.set("format", "binary")
		case t.is("CSV"):
			o.set("format", "csv")
		case t.is("HEADER"):
			o.set("header", "true")
		case t.is("FREEZE"):
			o.set("freeze", "true")
		case t.is("DELIMITER"), t.is("NULL"), t.is("QUOTE"), t.is("ESCAPE"), t.is("ENCODING"):
			p.next()
			if p.peek().is("AS") {
				p.next()
			}
			s := p.peek()
			if s.kind != tokString {
				return syntaxError("%s needs a string", t.name)
			}
			o.set(strings.ToLower(t.name), s.name)
		case t.is("FORCE"):
			p.next()
			key := "force_"
			switch {
			case p.peek().is("QUOTE"):
				key += "quote"
			case p.peek().is("NOT"):
				p.next()
				key += "not_null"
			case p.peek().is("NULL"):
				key += "null"
			default:
				return syntaxError("syntax error at or near %q", p.peek().text)
			}
			p.next()
			if p.peek().text == "*" {
				o.set(key, "*")
				break
			}
			cols, err := p.nameList(false)
			if err != nil {
				return err
			}
			o.setList(key, cols)
			continue
		default:
			return nil
		}
		p.next()
	}
}

// nameList reads column names "a, b", and the closing parenthesis if
// parenthesised (the older FORCE … syntax has none).
func (p *parser) nameList(parenthesised bool) ([]string, error) {
	var cols []string
	for {
		t := p.next()
		if t.kind != tokIdent {
			return nil, syntaxError("syntax error in a COPY column list at %q", t.text)
		}
		cols = append(cols, t.name)
		switch s := p.peek(); {
		case s.text == ",":
			p.next()
		case !parenthesised:
			return cols, nil
		case s.text == ")":
			p.next()
			return cols, nil
		default:
			return nil, syntaxError("syntax error in a COPY column list at %q", s.text)
		}
	}
}

type optionSet struct {
	vals  map[string]string
	lists map[string][]string
	order []string
	dup   string
}

func (o *optionSet) set(k, v string) {
	if o.vals == nil {
		o.vals = map[string]string{}
	}
	if _, seen := o.vals[k]; seen && o.dup == "" {
		o.dup = k
	}
	o.vals[k] = v
	o.order = append(o.order, k)
}

func (o *optionSet) setList(k string, v []string) {
	o.set(k, "")
	if o.lists == nil {
		o.lists = map[string][]string{}
	}
	o.lists[k] = v
}

// resolve checks the options as PostgreSQL's COPY does and fills opts.
func (o *optionSet) resolve(opts *Options, columns []string) error {
	if o.dup != "" {
		return syntaxError("conflicting or redundant options: %s", o.dup)
	}
	v := o.vals
	switch f := strings.ToLower(v["format"]); f {
	case "", "text":
		opts.Format = Text
	case "csv":
		opts.Format = CSV
	case "binary":
		opts.Format = Binary
	default:
		return &Error{Code: "22023", Message: fmt.Sprintf("COPY format %q not recognized", f)}
	}
	_, hasDelim := v["delimiter"]
	_, hasNull := v["null"]
	_, hasQuote := v["quote"]
	_, hasEscape := v["escape"]
	_, hasHeader := v["header"]
	for _, k := range o.order {
		switch k {
		case "format", "delimiter", "null", "header", "quote", "escape", "force_not_null", "force_null", "log_verbosity":
		case "force_quote":
			return syntaxError("COPY FORCE_QUOTE cannot be used with COPY FROM")
		case "encoding":
			switch strings.ToUpper(strings.ReplaceAll(v[k], "-", "")) {
			case "UTF8", "UNICODE":
			default:
				return unsupported("COPY FROM with ENCODING "+v[k], "pgtenant speaks UTF8 to clients; convert the data to UTF8.")
			}
		case "freeze":
			if boolean(v[k]) {
				return unsupported("COPY FREEZE", "pgtenant turns COPY FROM into INSERTs under row-level security; leave FREEZE out.")
			}
		case "on_error":
			if strings.ToLower(v[k]) != "stop" {
				return unsupported("COPY FROM with ON_ERROR "+v[k], "Clean the data first: pgtenant stops at the first bad row, as ON_ERROR stop does.")
			}
		case "default":
			return unsupported("COPY FROM with DEFAULT", "Leave the column out of the COPY column list to get its default.")
		case "reject_limit":
			return syntaxError("COPY REJECT_LIMIT requires ON_ERROR to be set to IGNORE")
		default:
			return syntaxError("option %q not recognized", k)
		}
	}
	if opts.Format == Binary {
		for _, k := range []string{"delimiter", "null", "header", "quote", "escape", "force_not_null", "force_null"} {
			if _, ok := v[k]; ok {
				return syntaxError("cannot specify %s in BINARY mode", strings.ToUpper(k))
			}
		}
		return nil
	}
	opts.Delimiter, opts.Null = '\t', `\N`
	if opts.Format == CSV {
		opts.Delimiter, opts.Null, opts.Quote = ',', "", '"'
	}
	if hasDelim {
		d := v["delimiter"]
		if len(d) != 1 {
			return &Error{Code: "0A000", Message: "COPY delimiter must be a single one-byte character"}
		}
		if d == "\n" || d == "\r" {
			return &Error{Code: "22023", Message: "COPY delimiter cannot be newline or carriage return"}
		}
		if opts.Format == Text && strings.ContainsRune(`\.abcdefghijklmnopqrstuvwxyz0123456789`, rune(d[0])) {
			return &Error{Code: "22023", Message: fmt.Sprintf("COPY delimiter cannot be %q", d)}
		}
		opts.Delimiter = d[0]
	}
	if hasNull {
		opts.Null = v["null"]
		if strings.ContainsAny(opts.Null, "\r\n") {
			return &Error{Code: "22023", Message: "COPY null representation cannot use newline or carriage return"}
		}
	}
	if hasHeader {
		switch h := strings.ToLower(v["header"]); {
		case h == "match":
			opts.Header = MatchHeader
		case h == "" || boolean(h):
			opts.Header = SkipHeader
		case isFalse(h):
		default:
			return &Error{Code: "22023", Message: fmt.Sprintf("header requires a Boolean value or \"match\", got %q", v["header"])}
		}
	}
	if opts.Format != CSV {
		for _, k := range []string{"quote", "escape", "force_not_null", "force_null"} {
			if _, ok := v[k]; ok {
				return &Error{Code: "0A000", Message: fmt.Sprintf("COPY %s requires CSV mode", strings.ToUpper(k))}
			}
		}
		return nil
	}
	if hasQuote {
		if len(v["quote"]) != 1 {
			return &Error{Code: "0A000", Message: "COPY quote must be a single one-byte character"}
		}
		opts.Quote = v["quote"][0]
	}
	opts.Escape = opts.Quote
	if hasEscape {
		if len(v["escape"]) != 1 {
			return &Error{Code: "0A000", Message: "COPY escape must be a single one-byte character"}
		}
		opts.Escape = v["escape"][0]
	}
	if opts.Delimiter == opts.Quote {
		return &Error{Code: "22023", Message: "COPY delimiter and quote must be different"}
	}
	if strings.IndexByte(opts.Null, opts.Delimiter) >= 0 {
		return &Error{Code: "22023", Message: "COPY delimiter character must not appear in the NULL specification"}
	}
	var err error
	if opts.ForceNotNull, opts.ForceNotNullAll, err = o.columns("force_not_null", columns); err != nil {
		return err
	}
	opts.ForceNull, opts.ForceNullAll, err = o.columns("force_null", columns)
	return err
}

// columns reads a FORCE_* column list; a name must be one COPY reads
// (checked later against the table when no column list was given).
func (o *optionSet) columns(k string, columns []string) ([]string, bool, error) {
	if o.vals[k] == "*" {
		return nil, true, nil
	}
	cols := o.lists[k]
	if _, ok := o.vals[k]; ok && cols == nil {
		return nil, false, syntaxError("%s needs a column list", strings.ToUpper(k))
	}
	if columns != nil {
		for _, c := range cols {
			if !contains(columns, c) {
				return nil, false, &Error{Code: "42P10", Message: fmt.Sprintf("%s column %q not referenced by COPY", strings.ToUpper(k), c)}
			}
		}
	}
	return cols, false, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func boolean(s string) bool {
	switch strings.ToLower(s) {
	case "", "true", "on", "1", "t", "yes", "y":
		return true
	}
	return false
}

func isFalse(s string) bool {
	switch strings.ToLower(s) {
	case "false", "off", "0", "f", "no", "n":
		return true
	}
	return false
}
