# Entry points: `make run` (portal + reference back office) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --no-audit --no-fund --silent && touch $@; \
	else \
		echo "npm not found: browser accessibility checks (axe-core) will be skipped"; \
	fi

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m portal.devrun

# Tests run in PYTEST_WORKERS processes (pytest-xdist; 0 = one process). Four on two
# cores: many tests wait on servers and browsers, so a fourth process fills the gaps.
# Bytecode is cached under .pytest_cache even where PYTHONDONTWRITEBYTECODE is set (as it
# is on the shared machines): else every worker rewrites the asserts of ~380 modules again
# (the test plugins' too), 4 s of CPU each before its first test.
PYTEST_WORKERS ?= 4
test: $(STAMP) node_modules/.installed
	PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(CURDIR)/.pytest_cache/pycache \
		$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check portal bureau tests bench
	$(BIN)/ruff format --check portal bureau tests bench
	$(BIN)/mypy portal bureau idp

bench: $(STAMP) node_modules/.installed
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) node_modules var test-output
