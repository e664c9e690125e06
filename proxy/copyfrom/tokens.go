package copyfrom

import (
	"errors"
	"strings"
)

type tokKind uint8

const (
	tokEOF tokKind = iota
	tokIdent
	tokString
	tokNumber
	tokPunct
)

// token is one lexical token of a COPY statement: text as written, and
// name, its value (an identifier folded or unquoted, a string unescaped).
type token struct {
	kind tokKind
	text string
	name string
}

func (t token) is(keyword string) bool {
	return t.kind == tokIdent && t.text[0] != '"' && strings.EqualFold(t.text, keyword)
}

var errLex = errors.New("cannot tokenize")

// tokenize splits a statement into tokens, dropping comments.
func tokenize(s string) ([]token, error) {
	var out []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			depth, j := 1, i+2
			for j < len(s) && depth > 0 {
				switch {
				case s[j] == '/' && j+1 < len(s) && s[j+1] == '*':
					depth++
					j += 2
				case s[j] == '*' && j+1 < len(s) && s[j+1] == '/':
					depth--
					j += 2
				default:
					j++
				}
			}
			if depth > 0 {
				return nil, errLex
			}
			i = j
		case c == '"':
			j := i + 1
			var b strings.Builder
			for {
				if j >= len(s) {
					return nil, errLex
				}
				if s[j] == '"' {
					if j+1 < len(s) && s[j+1] == '"' {
						b.WriteByte('"')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			if b.Len() == 0 {
				return nil, errLex
			}
			out = append(out, token{kind: tokIdent, text: s[i : j+1], name: b.String()})
			i = j + 1
		case c == '\'' || ((c == 'E' || c == 'e') && i+1 < len(s) && s[i+1] == '\''):
			escapes := c != '\''
			j := i + 1
			if escapes {
				j++
			}
			var b strings.Builder
			for {
				if j >= len(s) {
					return nil, errLex
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						b.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				if escapes && s[j] == '\\' && j+1 < len(s) {
					j++
					b.WriteByte(unescapeC(s[j]))
					j++
					continue
				}
				b.WriteByte(s[j])
				j++
			}
			out = append(out, token{kind: tokString, text: s[i : j+1], name: b.String()})
			i = j + 1
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && (isIdentStart(s[j]) || s[j] >= '0' && s[j] <= '9' || s[j] == '$') {
				j++
			}
			out = append(out, token{kind: tokIdent, text: s[i:j], name: asciiLower(s[i:j])})
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			out = append(out, token{kind: tokNumber, text: s[i:j], name: s[i:j]})
			i = j
		case c > ' ' && c < 0x7f:
			// Punctuation and operators, one byte each: enough to tell
			// a COPY's shape.
			out = append(out, token{kind: tokPunct, text: s[i : i+1], name: s[i : i+1]})
			i++
		default:
			return nil, errLex
		}
	}
	return out, nil
}

// asciiLower folds an unquoted identifier as PostgreSQL does: ASCII
// letters only.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

// unescapeC is the value of the escape \c in an E'…' string (the common
// ones; octal and hex escapes are not used in COPY options).
func unescapeC(c byte) byte {
	switch c {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return c
}
