#!/usr/bin/env bash
# Installs what the test suite needs besides PostgreSQL 18 and prints
# `export NAME=value` lines for the Makefile to eval:
#   PGTENANT_TEST_OLD_PG_BIN  a PostgreSQL older than 18, to prove that
#                             `pgtenant migrate` refuses it (Debian's packages);
#   PGTENANT_PSQL             psql, a real client for the end-to-end tests.
# Diagnostics go to stderr.
set -euo pipefail

log() { printf 'provision-test-deps: %s\n' "$*" >&2; }

old_pg_bin() {
	local dir
	for dir in /usr/lib/postgresql/*/bin; do
		[ -x "$dir/postgres" ] || continue
		case "$(basename "$(dirname "$dir")")" in
		1[0-7]) printf '%s\n' "$dir"; return 0 ;;
		esac
	done
	return 1
}

apt_install() {
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		log "cannot install $* here (needs root and apt-get); install it and re-run"
		return 1
	fi
	log "installing $* with apt-get"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2; then
		apt-get update -q >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
	fi
}

if [ -n "${PGTENANT_TEST_OLD_PG_BIN:-}" ]; then
	old="$PGTENANT_TEST_OLD_PG_BIN"
elif ! old="$(old_pg_bin)"; then
	apt_install postgresql
	old="$(old_pg_bin)" || { log "no PostgreSQL older than 18 under /usr/lib/postgresql after installing"; exit 1; }
fi
printf 'export PGTENANT_TEST_OLD_PG_BIN=%q\n' "$old"

if [ -n "${PGTENANT_PSQL:-}" ]; then
	psql="$PGTENANT_PSQL"
elif ! psql="$(command -v psql)"; then
	apt_install postgresql-client
	psql="$(command -v psql)" || { log "psql is still missing after installing postgresql-client"; exit 1; }
fi
printf 'export PGTENANT_PSQL=%q\n' "$psql"
