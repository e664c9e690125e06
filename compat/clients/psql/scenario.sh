#!/usr/bin/env bash
# The compatibility scenario with psql (libpq), as a user or a script would
# run it: one psql per step, the way shell scripts and cron jobs do.
set -u
a=$PGT_TENANT_A b=$PGT_TENANT_B
q() { psql "$PGT_URL" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

step() { # name, then a command that prints what it found; it must exit 0
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		echo "ok $name"
	else
		echo "fail $name: $(echo "$out" | tr '\n' ' ')"
	fi
}
expect() { # want, command...: the command's output must be want
	local want=$1 got
	shift
	got=$("$@") || return 1
	[ "$got" = "$want" ] || { echo "got [$got], want [$want]"; return 1; }
}

crud() {
	expect "$a" q -c "INSERT INTO projects (name) VALUES ('compat-psql') RETURNING tenant_id" &&
		expect "" q -c "UPDATE projects SET description = 'x' WHERE name = 'compat-psql'" &&
		expect 1 q -c "WITH d AS (DELETE FROM projects WHERE name = 'compat-psql' RETURNING 1) SELECT count(*) FROM d"
}
isolation() {
	expect 0 q -c "SELECT count(*) FROM projects WHERE tenant_id = '$b'" &&
		expect 1 q -c "SELECT count(DISTINCT tenant_id) FROM tasks"
}
rollback() {
	expect 0 q <<-SQL
		BEGIN;
		INSERT INTO projects (name) VALUES ('compat-rolled-back');
		ROLLBACK;
		SELECT count(*) FROM projects WHERE name = 'compat-rolled-back';
	SQL
}
recovery() {
	# One session: the error, then a statement that must work.
	expect $'22012\n1' q -v ON_ERROR_STOP=0 2>/dev/null <<-SQL
		SELECT 1/0;
		\echo :LAST_ERROR_SQLSTATE
		SELECT 1;
	SQL
}
large() {
	local n
	n=$(q -c "SELECT generate_series(1, 100000)" | wc -l)
	[ "$n" -eq 100000 ] || { echo "$n rows"; return 1; }
}
copy() {
	expect "$a"$'\n'"$a" q -c "\\copy (SELECT tenant_id FROM projects) TO STDOUT" &&
		printf 'compat-copy-1\tx\ncompat-copy-2\ty\n' | q -c "\\copy projects (name, description) FROM STDIN" &&
		expect 2 q -c "SELECT count(*) FROM projects WHERE name LIKE 'compat-copy-%' AND tenant_id = '$a'" &&
		q -c "DELETE FROM projects WHERE name LIKE 'compat-copy-%'"
}
cancel() {
	# Ctrl-C: psql sends a CancelRequest for its running statement.
	local start=$SECONDS err
	err=$(mktemp)
	# Job control, or bash starts background jobs with SIGINT ignored.
	set -m
	psql "$PGT_URL" -X -q -At -c "SELECT pg_sleep(10)" 2>"$err" &
	local pid=$!
	set +m
	sleep 1
	kill -INT $pid
	wait $pid && { echo "not cancelled"; rm -f "$err"; return 1; }
	grep -q "canceling statement due to user request" "$err" || { cat "$err"; rm -f "$err"; return 1; }
	rm -f "$err"
	((SECONDS - start < 8)) || { echo "took $((SECONDS - start)) s"; return 1; }
	expect 1 q -c "SELECT 1"
}
metadata() {
	# What \d runs: pg_catalog queries, as BI tools do.
	local out
	out=$(q -c '\d projects') || return 1
	for col in project_id tenant_id name description created_at updated_at; do
		grep -q "^$col|" <<<"$out" || { echo "no $col in: $out"; return 1; }
	done
	q -c '\dt' | grep -q '|projects|table|' || { echo "\\dt lacks projects"; return 1; }
}

step crud crud
step isolation isolation
echo "n/a prepared: psql 15 has no protocol-level prepared statements (\\bind is psql 16+); pgbench -M prepared covers libpq"
step rollback rollback
step recovery recovery
step large large
step copy copy
step cancel cancel
step metadata metadata
