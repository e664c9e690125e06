package proxy

import "testing"

func TestParseSetting(t *testing.T) {
	cases := []struct {
		stmt    string
		kind    changeKind
		name    string
		replay  string
		refused string // SQLSTATE
	}{
		{"SET TimeZone = 'UTC'", changeSet, "timezone", "SET LOCAL TimeZone = 'UTC'", ""},
		{"set search_path to public, pg_catalog", changeSet, "search_path", "SET LOCAL search_path to public, pg_catalog", ""},
		{"SET SESSION statement_timeout = 5", changeSet, "statement_timeout", "SET LOCAL statement_timeout = 5", ""},
		{"SET TIME ZONE 'Europe/Paris';", changeSet, "timezone", "SET LOCAL TIME ZONE 'Europe/Paris'", ""},
		{"SET SCHEMA 'app'", changeSet, "search_path", "SET LOCAL SCHEMA 'app'", ""},
		{"SET myapp.user_id = '42'", changeSet, "myapp.user_id", "SET LOCAL myapp.user_id = '42'", ""},
		{"SET LOCAL work_mem = '1MB'", changeNone, "", "", ""},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", changeNone, "", "", ""},
		{"SET CONSTRAINTS ALL DEFERRED", changeNone, "", "", ""},
		{"RESET work_mem", changeReset, "work_mem", "", ""},
		{"RESET TIME ZONE", changeReset, "timezone", "", ""},
		{"RESET ALL", changeResetAll, "", "", ""},
		{"RESET ROLE", changeNone, "", "", ""},
		{"SET ROLE erun_operations", changeNone, "", "", "42501"},
		{"SET SESSION AUTHORIZATION x", changeNone, "", "", "42501"},
		{"SET erun.tenant_id = 'x'", changeNone, "", "", "42501"},
		{`SET "erun.tenant_proof" = 'x'`, changeNone, "", "", "42501"},
		{"SET ERUN.Tenant_Id TO 'x'", changeNone, "", "", "42501"},
		{"SET role = 'x'", changeNone, "", "", "42501"},
		{"SET client_encoding = 'LATIN1'", changeNone, "", "", "0A000"},
		{"SET transaction_isolation = 'serializable'", changeNone, "", "", "0A000"},
		{"SELECT 1", changeNone, "", "", ""},
	}
	for _, c := range cases {
		ch, e := parseSetting(c.stmt)
		switch {
		case c.refused != "" && (e == nil || e.Code != c.refused):
			t.Errorf("%q: refusal %v, want %s", c.stmt, e, c.refused)
		case c.refused == "" && e != nil:
			t.Errorf("%q: refused: %v", c.stmt, e)
		case ch.kind != c.kind || ch.name != c.name || ch.replay != c.replay:
			t.Errorf("%q: %+v, want kind %d name %q replay %q", c.stmt, ch, c.kind, c.name, c.replay)
		}
	}
}

func TestStartupSettings(t *testing.T) {
	s, e := startupSettings(map[string]string{"user": "u", "database": "d", "client_encoding": "UTF8",
		"DateStyle": "ISO, MDY", "application_name": "it's", "options": `-c statement_timeout=5s --work-mem=4MB -c search_path=a\ b`})
	if e != nil {
		t.Fatal(e)
	}
	replay, n := s.replay()
	want := `; SET LOCAL "application_name" = 'it''s'; SET LOCAL "datestyle" = 'ISO, MDY'; SET LOCAL "search_path" = 'a b'; SET LOCAL "statement_timeout" = '5s'; SET LOCAL "work_mem" = '4MB'`
	if replay != want || n != 5 {
		t.Fatalf("replay = %s (%d)\nwant     %s", replay, n, want)
	}
	if _, e := startupSettings(map[string]string{"client_encoding": "'utf-8'"}); e != nil {
		t.Errorf("asyncpg's client_encoding 'utf-8' refused: %v", e)
	}
	for _, bad := range []map[string]string{{"client_encoding": "LATIN1"}, {"options": "-c role=x"}, {"erun.tenant_id": "x"}, {"replication": "database"}} {
		if _, e := startupSettings(bad); e == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
