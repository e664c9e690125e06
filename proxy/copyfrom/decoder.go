package copyfrom

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Batch collects decoded rows: each row is ncols fields, each a span of
// Data or NULL.
type Batch struct {
	Data   []byte
	Fields []Field
	Rows   int
}

// Field is one value of a row; Len < 0 is NULL.
type Field struct{ Off, Len int }

// Reset empties the batch, keeping its memory.
func (b *Batch) Reset() { b.Data, b.Fields, b.Rows = b.Data[:0], b.Fields[:0], 0 }

// Value returns field f's bytes (nil for NULL).
func (b *Batch) Value(f Field) []byte {
	if f.Len < 0 {
		return nil
	}
	return b.Data[f.Off : f.Off+f.Len]
}

// Decoder turns COPY data, in pieces as CopyData messages bring it, into
// rows.
type Decoder struct {
	opts  Options
	names []string
	// forceNotNull/forceNull per column.
	forceNotNull, forceNull []bool

	buf  []byte // data not yet decoded, from pos
	pos  int
	line int64 // lines (text, csv) or rows (binary) read so far
	// eol is the line ending, fixed by the first line as PostgreSQL does.
	eol        string
	scan       int  // bytes of the current line already scanned
	scanQuote  bool // and whether they end inside quotes
	headerDone bool
	sigRead    bool // binary: the file header was read
	done       bool // the end marker or trailer was read
	afterEnd   bool // and data followed it
	scratch    Batch
}

// NewDecoder reads data for the columns names (in COPY's order).
func NewDecoder(opts Options, names []string) (*Decoder, error) {
	d := &Decoder{opts: opts, names: names, forceNotNull: make([]bool, len(names)), forceNull: make([]bool, len(names))}
	for _, f := range []struct {
		list  []string
		all   bool
		flags []bool
		name  string
	}{{opts.ForceNotNull, opts.ForceNotNullAll, d.forceNotNull, "FORCE_NOT_NULL"}, {opts.ForceNull, opts.ForceNullAll, d.forceNull, "FORCE_NULL"}} {
		for i := range f.flags {
			f.flags[i] = f.all
		}
		for _, c := range f.list {
			i := indexOf(names, c)
			if i < 0 {
				return nil, &Error{Code: "42P10", Message: fmt.Sprintf("%s column %q not referenced by COPY", f.name, c)}
			}
			f.flags[i] = true
		}
	}
	d.headerDone = opts.Header == NoHeader
	return d, nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// Line is the number of lines (rows, for binary) read so far; an error
// is about line Line().
func (d *Decoder) Line() int64 { return d.line }

// Write adds data from one CopyData message.
func (d *Decoder) Write(p []byte) {
	if d.done {
		d.afterEnd = d.afterEnd || len(p) > 0
		return
	}
	if d.pos > 0 && d.pos >= len(d.buf)/2 {
		n := copy(d.buf, d.buf[d.pos:])
		d.buf, d.pos = d.buf[:n], 0
	}
	d.buf = append(d.buf, p...)
}

// Next decodes one complete row into b. It returns false when it needs
// more data (or the data ended). final says no more data will come: a
// last line without a line ending is then complete.
func (d *Decoder) Next(b *Batch, final bool) (bool, error) {
	for !d.done {
		if d.opts.Format == Binary {
			return d.nextBinary(b, final)
		}
		line, ok, err := d.nextLine(final)
		if !ok || err != nil {
			return false, err
		}
		// The end marker \. (text only: since PostgreSQL 18, csv data
		// from STDIN has none).
		if d.opts.Format == Text && len(line) == 2 && line[0] == '\\' && line[1] == '.' {
			d.done = true
			return false, nil
		}
		d.line++
		if !d.headerDone {
			d.headerDone = true
			if err := d.checkHeader(line); err != nil {
				return false, err
			}
			continue
		}
		return true, d.fields(b, line)
	}
	return false, nil
}

// Finish checks that the data ended cleanly, at CopyDone, after Next
// with final set has returned every row.
func (d *Decoder) Finish() error {
	switch {
	case d.done && d.afterEnd && d.opts.Format == Binary:
		return badFormat("received copy data after EOF marker")
	case d.done:
		return nil
	case d.opts.Format == Binary && !d.sigRead:
		return badFormat("COPY file signature not recognized")
	case d.pos < len(d.buf):
		return badFormat("unexpected EOF in COPY data")
	}
	return nil
}

func badFormat(format string, a ...any) *Error {
	return &Error{Code: "22P04", Message: fmt.Sprintf(format, a...)}
}

// nextLine returns the next line without its ending.
func (d *Decoder) nextLine(final bool) ([]byte, bool, error) {
	data := d.buf[d.pos:]
	// Resume where the last call stopped: a long row may come in many
	// messages.
	inQuote := d.scanQuote
	csv := d.opts.Format == CSV
	q, esc := d.opts.Quote, d.opts.Escape
	i := d.scan
	needMore := func() ([]byte, bool, error) {
		d.scan, d.scanQuote = i, inQuote
		return nil, false, nil
	}
	for ; i < len(data); i++ {
		c := data[i]
		switch {
		case csv && inQuote && c == esc && i+1 < len(data) && (data[i+1] == q || data[i+1] == esc) && (esc != q || data[i+1] == q):
			i++
		case csv && inQuote && c == esc && esc != q && i+1 == len(data) && !final:
			return needMore() // the escaped character has not arrived
		case csv && c == q:
			if inQuote && esc == q && i+1 == len(data) && !final {
				return needMore() // a doubled quote may follow
			}
			inQuote = !inQuote
		case !csv && c == '\\':
			if i+1 == len(data) && !final {
				return needMore()
			}
			i++ // whatever follows a backslash is data
		case (c == '\n' || c == '\r') && !inQuote:
			end := i
			if c == '\r' && i+1 == len(data) && !final && d.eol != "\r" {
				return needMore() // \r\n may be split between messages
			}
			eol := string(c)
			if c == '\r' && i+1 < len(data) && data[i+1] == '\n' {
				eol = "\r\n"
			}
			if d.eol == "" {
				d.eol = eol
			} else if eol != d.eol {
				if c == '\r' {
					return nil, false, badFormat("literal carriage return found in data")
				}
				return nil, false, badFormat("literal newline found in data")
			}
			d.pos += i + len(eol)
			d.scan, d.scanQuote = 0, false
			return data[:end], true, nil
		}
	}
	if final && len(data) > 0 {
		if inQuote {
			return nil, false, badFormat("unterminated CSV quoted field")
		}
		d.pos += len(data)
		d.scan, d.scanQuote = 0, false
		return data, true, nil
	}
	return needMore()
}

// fields splits a line into the row's fields and appends them to b.
func (d *Decoder) fields(b *Batch, line []byte) error {
	if len(d.names) == 0 {
		if len(line) > 0 {
			return badFormat("extra data after last expected column")
		}
		b.Rows++
		return nil
	}
	nFields, nData := len(b.Fields), len(b.Data)
	n, err := d.split(b, line)
	switch {
	case err != nil:
	case n > len(d.names):
		err = badFormat("extra data after last expected column")
	case n < len(d.names):
		err = badFormat("missing data for column %q", d.names[n])
	}
	if err != nil {
		b.Fields, b.Data = b.Fields[:nFields], b.Data[:nData]
		return err
	}
	b.Rows++
	return nil
}

// split appends all fields of a line to b and returns how many there were.
func (d *Decoder) split(b *Batch, line []byte) (int, error) {
	for n := 0; ; {
		var f Field
		var more bool
		var err error
		if d.opts.Format == CSV {
			f, line, more, err = d.csvField(b, line, n)
		} else {
			f, line, more, err = d.textField(b, line)
		}
		if err != nil {
			return n, err
		}
		b.Fields = append(b.Fields, f)
		n++
		if !more {
			return n, nil
		}
	}
}

// textField decodes one text-format field; more says a delimiter followed.
func (d *Decoder) textField(b *Batch, s []byte) (Field, []byte, bool, error) {
	end, more := len(s), false
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == d.opts.Delimiter {
			end, more = i, true
			break
		}
	}
	raw := s[:end]
	rest := s[min(end+1, len(s)):]
	if string(raw) == d.opts.Null {
		return Field{Len: -1}, rest, more, nil
	}
	off := len(b.Data)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 == len(raw) {
			if c == '\\' {
				break // a lone trailing backslash is dropped, as PostgreSQL does
			}
			b.Data = append(b.Data, c)
			continue
		}
		i++
		c = raw[i]
		switch c {
		case 'b':
			b.Data = append(b.Data, '\b')
		case 'f':
			b.Data = append(b.Data, '\f')
		case 'n':
			b.Data = append(b.Data, '\n')
		case 'r':
			b.Data = append(b.Data, '\r')
		case 't':
			b.Data = append(b.Data, '\t')
		case 'v':
			b.Data = append(b.Data, '\v')
		case '.':
			return Field{}, nil, false, badFormat("end-of-copy marker is not alone on its line")
		case 'x':
			v, n := 0, 0
			for n < 2 && i+1 < len(raw) && hexDigit(raw[i+1]) >= 0 {
				v = v*16 + hexDigit(raw[i+1])
				i++
				n++
			}
			if n == 0 {
				b.Data = append(b.Data, 'x')
			} else {
				b.Data = append(b.Data, byte(v))
			}
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(c - '0')
			for n := 1; n < 3 && i+1 < len(raw) && raw[i+1] >= '0' && raw[i+1] <= '7'; n++ {
				v = v*8 + int(raw[i+1]-'0')
				i++
			}
			b.Data = append(b.Data, byte(v))
		default:
			b.Data = append(b.Data, c)
		}
	}
	return Field{Off: off, Len: len(b.Data) - off}, rest, more, nil
}

func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// csvField decodes one csv field of column col.
func (d *Decoder) csvField(b *Batch, s []byte, col int) (Field, []byte, bool, error) {
	q, esc, delim := d.opts.Quote, d.opts.Escape, d.opts.Delimiter
	off := len(b.Data)
	sawQuote, inQuote := false, false
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if inQuote {
			if c == esc && i+1 < len(s) && (s[i+1] == q || s[i+1] == esc) && (esc != q || s[i+1] == q) {
				b.Data = append(b.Data, s[i+1])
				i++
				continue
			}
			if c == q {
				inQuote = false
				continue
			}
			b.Data = append(b.Data, c)
			continue
		}
		if c == delim {
			break
		}
		if c == q {
			inQuote, sawQuote = true, true
			continue
		}
		b.Data = append(b.Data, c)
	}
	if inQuote {
		return Field{}, nil, false, badFormat("unterminated CSV quoted field")
	}
	more := i < len(s)
	raw := s[:i]
	rest := s[min(i+1, len(s)):]
	f := Field{Off: off, Len: len(b.Data) - off}
	null := !sawQuote && string(raw) == d.opts.Null
	if col < len(d.forceNull) && d.forceNull[col] && string(b.Value(f)) == d.opts.Null {
		null = true
	}
	if null && col < len(d.forceNotNull) && d.forceNotNull[col] {
		// FORCE_NOT_NULL reads the null marker as its text.
		b.Data = append(b.Data[:off], d.opts.Null...)
		return Field{Off: off, Len: len(d.opts.Null)}, rest, more, nil
	}
	if null {
		b.Data = b.Data[:off]
		return Field{Len: -1}, rest, more, nil
	}
	return f, rest, more, nil
}

// checkHeader reads the header line, which for HEADER MATCH must name the
// columns.
func (d *Decoder) checkHeader(line []byte) error {
	if d.opts.Header != MatchHeader {
		return nil
	}
	h := &d.scratch
	h.Reset()
	names := d.names
	if _, err := d.split(h, line); err != nil {
		return err
	}
	if len(h.Fields) != len(names) {
		return badFormat("wrong number of fields in header line: got %d, expected %d", len(h.Fields), len(names))
	}
	for i, f := range h.Fields {
		if f.Len < 0 {
			return badFormat("column name mismatch in header line field %d: got null value (%q), expected %q", i+1, d.opts.Null, names[i])
		}
		if got := string(h.Value(f)); got != names[i] {
			return badFormat("column name mismatch in header line field %d: got %q, expected %q", i+1, got, names[i])
		}
	}
	return nil
}

var binarySignature = []byte("PGCOPY\n\377\r\n\000")

// nextBinary decodes one binary tuple.
func (d *Decoder) nextBinary(b *Batch, final bool) (bool, error) {
	data := d.buf[d.pos:]
	if !d.sigRead {
		if len(data) < 19 {
			if final {
				return false, badFormat("COPY file signature not recognized")
			}
			return false, nil
		}
		if !bytes.Equal(data[:11], binarySignature) {
			return false, badFormat("COPY file signature not recognized")
		}
		flags := binary.BigEndian.Uint32(data[11:])
		if flags&(1<<16) != 0 {
			return false, badFormat("invalid COPY file header (WITH OIDS)")
		}
		if flags&^(1<<16)>>16 != 0 {
			return false, badFormat("unrecognized critical flags in COPY file header")
		}
		ext := int(binary.BigEndian.Uint32(data[15:]))
		if ext < 0 || len(data) < 19+ext {
			if ext < 0 || final {
				return false, badFormat("invalid COPY file header (wrong length)")
			}
			return false, nil
		}
		d.pos += 19 + ext
		d.sigRead = true
		data = d.buf[d.pos:]
	}
	if len(data) < 2 {
		return false, nil
	}
	n := int(int16(binary.BigEndian.Uint16(data)))
	if n == -1 {
		d.pos += 2
		d.done = true
		d.afterEnd = d.pos < len(d.buf)
		return false, nil
	}
	if n != len(d.names) {
		d.line++
		return false, badFormat("row field count is %d, expected %d", n, len(d.names))
	}
	// Check the whole tuple has arrived before decoding any of it.
	p := 2
	for range n {
		if len(data) < p+4 {
			return false, nil
		}
		l := int(int32(binary.BigEndian.Uint32(data[p:])))
		if l < -1 {
			d.line++
			return false, badFormat("invalid field size")
		}
		p += 4 + max(l, 0)
		if len(data) < p {
			return false, nil
		}
	}
	d.line++
	p = 2
	for range n {
		l := int(int32(binary.BigEndian.Uint32(data[p:])))
		p += 4
		if l < 0 {
			b.Fields = append(b.Fields, Field{Len: -1})
			continue
		}
		off := len(b.Data)
		b.Data = append(b.Data, data[p:p+l]...)
		b.Fields = append(b.Fields, Field{Off: off, Len: l})
		p += l
	}
	d.pos += p
	b.Rows++
	return true, nil
}
