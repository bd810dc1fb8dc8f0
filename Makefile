# Two commands a newcomer needs: `make run` (service on the embedded SQLite default)
# and `make test` (the whole suite against real PostgreSQL and SQLite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run test faults lint bench bench-quick bench-audit bench-projections bench-mcp clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/agentledger serve --host $(HOST) --port $(PORT)

# One worker per core (at most 4: the tests start servers and clusters of their own).
test: lint
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4

# The fault suite alone (also part of `make test`): PostgreSQL killed under load on a throwaway
# cluster of its own, serve killed, SQLite files read-only and a full disk, hostile clients,
# the OpenAPI fuzzer. Needs root for chattr and a loop mount, as CI runs it.
faults: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 tests/faults

# ruff everywhere, mypy --strict on domain/ and application/: cheap guards, part of `make test`.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The benchmark suite (not part of `make test`): real PostgreSQL (DATABASE_URL or the local
# server); prints tables, writes bench/results/<timestamp>.json, regenerates docs/performance.md.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

# The audit trail's costs on a log of a million events (export, seal, verify, status as_of,
# refusal recording); STORE=postgres for the local server.
bench-audit: $(STAMP)
	$(BIN)/python -m bench.audit --store $(or $(STORE),sqlite) $(BENCH_ARGS)

# What projections cost: rebuild throughput (blue/green and in place), verify, and read-model
# lag under sustained writes (STORE=postgres; BENCH_ARGS="--events 1000000").
bench-projections: $(STAMP)
	$(BIN)/python -m bench.projections --store $(or $(STORE),sqlite) $(BENCH_ARGS)

# One MCP tool call on each transport (streamable HTTP, stdio through serve, stdio on the
# store) beside the same command over plain HTTP (STORE=sqlite|postgres|both).
bench-mcp: $(STAMP)
	$(BIN)/python -m bench.mcp --store $(or $(STORE),both) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .agentledger .pytest_cache
