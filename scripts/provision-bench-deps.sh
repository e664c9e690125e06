#!/usr/bin/env bash
# Installs what make bench compares against: pgbench (PostgreSQL client
# programs) and PgBouncer, from Debian's packages when run as root.
# Without root it only reports what is missing; bench then leaves PgBouncer out.
set -euo pipefail
need=()
command -v pgbench >/dev/null || need+=(postgresql-client)
command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "provision-bench-deps: missing ${need[*]} (install them to compare against all targets)" >&2
	exit 0
fi
echo "provision-bench-deps: installing ${need[*]}" >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2 ||
	{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2; }
