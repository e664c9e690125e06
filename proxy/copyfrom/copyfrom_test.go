package copyfrom

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		sql   string
		ok    bool
		code  string // of the error, if any
		table string
		cols  []string
		names []string
		opts  Options
	}{
		{sql: "COPY t FROM STDIN", ok: true, table: "t", opts: Options{Format: Text, Delimiter: '\t', Null: `\N`}},
		{sql: `copy public."My T" ("A", b) from stdin;`, ok: true, table: `public."My T"`, cols: []string{`"A"`, "b"}, names: []string{"A", "b"},
			opts: Options{Format: Text, Delimiter: '\t', Null: `\N`}},
		{sql: "COPY t (a) FROM STDIN (FORMAT csv, HEADER match, FORCE_NULL (a))", ok: true, table: "t", cols: []string{"a"}, names: []string{"a"},
			opts: Options{Format: CSV, Delimiter: ',', Quote: '"', Escape: '"', Header: MatchHeader, ForceNull: []string{"a"}}},
		{sql: "COPY t FROM STDIN WITH CSV HEADER DELIMITER AS ';' NULL AS 'x' QUOTE '''' ESCAPE E'\\\\' FORCE NOT NULL a, b", ok: true, table: "t",
			opts: Options{Format: CSV, Delimiter: ';', Null: "x", Quote: '\'', Escape: '\\', Header: SkipHeader, ForceNotNull: []string{"a", "b"}}},
		{sql: "COPY t FROM STDIN USING DELIMITERS '|'", ok: true, table: "t", opts: Options{Format: Text, Delimiter: '|', Null: `\N`}},
		{sql: "COPY BINARY t FROM STDIN", ok: true, table: "t", opts: Options{Format: Binary}},
		{sql: "COPY t FROM STDIN (FORMAT binary)", ok: true, table: "t", opts: Options{Format: Binary}},
		{sql: "COPY t FROM STDIN (FORMAT csv, FORCE_NOT_NULL *, ENCODING 'utf-8', ON_ERROR stop)", ok: true, table: "t",
			opts: Options{Format: CSV, Delimiter: ',', Quote: '"', Escape: '"', ForceNotNullAll: true}},
		{sql: "COPY a.b.c FROM STDIN -- comment\n", ok: true, table: "a.b.c", opts: Options{Format: Text, Delimiter: '\t', Null: `\N`}},

		{sql: "COPY t TO STDOUT"},
		{sql: "COPY (SELECT 1 FROM stdin) TO STDOUT"},
		{sql: "COPY t FROM '/etc/passwd'"},
		{sql: "COPY t FROM PROGRAM 'id'"},
		{sql: "SELECT 1"},

		{sql: "COPY t FROM STDIN (FORMAT binary, HEADER)", ok: true, code: "42601"},
		{sql: "COPY t FROM STDIN (QUOTE '\"')", ok: true, code: "0A000"},
		{sql: "COPY t FROM STDIN (FORMAT csv, DELIMITER ',,')", ok: true, code: "0A000"},
		{sql: "COPY t FROM STDIN (FORMAT csv, DELIMITER '\"')", ok: true, code: "22023"},
		{sql: "COPY t FROM STDIN (DELIMITER '\\')", ok: true, code: "22023"},
		{sql: "COPY t FROM STDIN (FORMAT csv, FORMAT text)", ok: true, code: "42601"},
		{sql: "COPY t FROM STDIN (FORMAT csv, FORCE_QUOTE *)", ok: true, code: "42601"},
		{sql: "COPY t (a) FROM STDIN (FORMAT csv, FORCE_NULL (b))", ok: true, code: "42P10"},
		{sql: "COPY t FROM STDIN (ENCODING 'LATIN1')", ok: true, code: "0A000"},
		{sql: "COPY t FROM STDIN (ON_ERROR ignore)", ok: true, code: "0A000"},
		{sql: "COPY t FROM STDIN (DEFAULT 'x')", ok: true, code: "0A000"},
		{sql: "COPY t FROM STDIN (FREEZE)", ok: true, code: "0A000"},
		{sql: "COPY t FROM STDIN (FREEZE false)", ok: true, table: "t", opts: Options{Format: Text, Delimiter: '\t', Null: `\N`}},
		{sql: "COPY t FROM STDIN WHERE a > 1", ok: true, code: "0A000"},
		{sql: "COPY t FROM STDIN (HEADER maybe)", ok: true, code: "22023"},
		{sql: "COPY t FROM STDIN (BOGUS)", ok: true, code: "42601"},
		{sql: "COPY t (a FROM STDIN", ok: true, code: "42601"},
		{sql: "COPY t FROM STDIN; DROP TABLE x", ok: true, code: "42601"},
	}
	for _, tc := range cases {
		t.Run(tc.sql, func(t *testing.T) {
			st, ok, err := Parse(tc.sql)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if IsCopyFromStdin(tc.sql) != tc.ok {
				t.Fatalf("IsCopyFromStdin disagrees with Parse")
			}
			if tc.code != "" {
				e, isErr := err.(*Error)
				if !isErr || e.Code != tc.code {
					t.Fatalf("err = %v, want SQLSTATE %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return
			}
			if st.Table != tc.table || !reflect.DeepEqual(st.Columns, tc.cols) || !reflect.DeepEqual(st.Names, tc.names) || !reflect.DeepEqual(st.Options, tc.opts) {
				t.Fatalf("got %+v", st)
			}
		})
	}
}

// decodeAll decodes data delivered in pieces of the given sizes.
func decodeAll(opts Options, names []string, data []byte, piece int) ([]string, error) {
	d, err := NewDecoder(opts, names)
	if err != nil {
		return nil, err
	}
	var rows []string
	var b Batch
	take := func(final bool) error {
		for {
			ok, err := d.Next(&b, final)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
		}
	}
	for len(data) > 0 {
		n := min(piece, len(data))
		d.Write(data[:n])
		data = data[n:]
		if err := take(false); err != nil {
			return rows, err
		}
	}
	if err := take(true); err != nil {
		return rows, err
	}
	if err := d.Finish(); err != nil {
		return rows, err
	}
	ncols := max(len(names), 1)
	for r := 0; r < b.Rows && len(names) > 0; r++ {
		var f []string
		for _, x := range b.Fields[r*ncols : (r+1)*ncols] {
			if x.Len < 0 {
				f = append(f, "NULL")
			} else {
				f = append(f, fmt.Sprintf("%q", b.Value(x)))
			}
		}
		rows = append(rows, strings.Join(f, ","))
	}
	return rows, nil
}

func TestDecoderTable(t *testing.T) {
	text := Options{Format: Text, Delimiter: '\t', Null: `\N`}
	csv := Options{Format: CSV, Delimiter: ',', Quote: '"', Escape: '"'}
	cases := []struct {
		name  string
		opts  Options
		names []string
		data  string
		want  []string
		code  string
	}{
		{"text", text, []string{"a", "b"}, "1\tx\n\\N\t\\t\n", []string{`"1","x"`, `NULL,"\t"`}, ""},
		{"text marker", text, []string{"a"}, "1\n\\.\n2\n", []string{`"1"`}, ""},
		{"text missing", text, []string{"a", "b"}, "1\n", nil, "22P04"},
		{"csv", csv, []string{"a", "b"}, "\"x,\"\"y\"\"\",\n", []string{`"x,\"y\"",NULL`}, ""},
		{"csv multiline", csv, []string{"a"}, "\"1\n2\"\n", []string{`"1\n2"`}, ""},
		{"csv unterminated", csv, []string{"a"}, "\"1\n", nil, "22P04"},
		{"header match", Options{Format: CSV, Delimiter: ',', Quote: '"', Escape: '"', Header: MatchHeader}, []string{"a", "b"}, "a,b\n1,2\n", []string{`"1","2"`}, ""},
		{"header mismatch", Options{Format: CSV, Delimiter: ',', Quote: '"', Escape: '"', Header: MatchHeader}, []string{"a", "b"}, "a,c\n", nil, "22P04"},
		{"binary", Options{Format: Binary}, []string{"a", "b"}, "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x01z\xff\xff\xff\xff\xff\xff", []string{`"z",NULL`}, ""},
		{"binary short", Options{Format: Binary}, []string{"a"}, "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00", nil, "22P04"},
	}
	for _, tc := range cases {
		for _, piece := range []int{1, 2, 3, 7, 1 << 20} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, piece), func(t *testing.T) {
				rows, err := decodeAll(tc.opts, tc.names, []byte(tc.data), piece)
				if tc.code != "" {
					if e, ok := err.(*Error); !ok || e.Code != tc.code {
						t.Fatalf("err = %v, want %s", err, tc.code)
					}
					return
				}
				if err != nil || !reflect.DeepEqual(rows, tc.want) {
					t.Fatalf("rows %v, err %v; want %v", rows, err, tc.want)
				}
			})
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"COPY t FROM STDIN", "COPY t (a, \"b\") FROM STDIN (FORMAT csv, FORCE_NULL *)",
		"COPY t FROM STDIN WITH CSV HEADER FORCE NOT NULL a", "COPY x.y FROM STDIN USING DELIMITERS ','"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		st, ok, err := Parse(sql)
		if ok != IsCopyFromStdin(sql) {
			t.Fatalf("Parse and IsCopyFromStdin disagree on %q", sql)
		}
		if ok && err == nil {
			// What is spliced into SQL must be identifiers only.
			if _, terr := tokenize(st.Table); terr != nil || strings.ContainsAny(st.Table, ";'()") && st.Table[0] != '"' {
				t.Fatalf("table %q", st.Table)
			}
		}
	})
}

// FuzzDecoder: decoding never panics, and the rows do not depend on how
// the data was split into messages.
func FuzzDecoder(f *testing.F) {
	f.Add(uint8(0), "1\tx\n\\N\t\\t\\101\n", 3)
	f.Add(uint8(1), "\"x,\"\"y\"\"\",\n\"1\n2\",\r\n", 2)
	f.Add(uint8(2), "PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x01z\xff\xff\xff\xff\xff\xff", 5)
	f.Fuzz(func(t *testing.T, format uint8, data string, piece int) {
		opts := []Options{
			{Format: Text, Delimiter: '\t', Null: `\N`},
			{Format: CSV, Delimiter: ',', Quote: '"', Escape: '"', Header: MatchHeader},
			{Format: Binary},
		}[format%3]
		if piece < 1 {
			piece = 1
		}
		names := []string{"a", "b"}
		whole, werr := decodeAll(opts, names, []byte(data), len(data)+1)
		split, serr := decodeAll(opts, names, []byte(data), piece)
		if (werr == nil) != (serr == nil) || !reflect.DeepEqual(whole, split) {
			t.Fatalf("whole: %v %v\nin pieces of %d: %v %v", whole, werr, piece, split, serr)
		}
	})
}
