#!/usr/bin/env bash
# Installs the client libraries make compat runs through pgtenant:
# psycopg 3, psycopg2 and asyncpg and the PostgreSQL JDBC driver from
# Debian's packages (with a JDK), PgBouncer for the comparison, and
# node-postgres, pg-copy-streams and postgres.js from the npm
# registry (versions pinned in compat/clients/node/package-lock.json).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf 'provision-compat-deps: %s\n' "$*" >&2; }

need=()
/usr/bin/python3 -c 'import psycopg' 2>/dev/null || need+=(python3-psycopg)
/usr/bin/python3 -c 'import psycopg2' 2>/dev/null || need+=(python3-psycopg2)
/usr/bin/python3 -c 'import asyncpg' 2>/dev/null || need+=(python3-asyncpg)
[ -f /usr/share/java/postgresql.jar ] || need+=(libpostgresql-jdbc-java)
command -v javac >/dev/null || need+=(default-jdk-headless)
command -v pgbench >/dev/null || need+=(postgresql-client)
command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		log "missing ${need[*]}: install them (Debian packages) and re-run"
		exit 1
	fi
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2 ||
		{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2; }
fi
command -v node >/dev/null && command -v npm >/dev/null || { log "Node.js with npm is required"; exit 1; }
cd "$ROOT/compat/clients/node"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
	log "installing node-postgres, pg-copy-streams and postgres.js with npm"
	npm ci --no-audit --no-fund --silent >&2
fi
