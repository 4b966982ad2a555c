PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export QUNYUN_VAR_DIR ?= var

.PHONY: run test lint bench install clean

$(BIN)/qunyun: pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PY) not found)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(BIN)/qunyun

install: $(BIN)/qunyun

run: install
	$(BIN)/qunyun db upgrade
	$(BIN)/qunyun demo --if-empty
	$(BIN)/qunyun serve --host 127.0.0.1 --port 8000

# Two processes (pytest-xdist), each on a database of its own; a module's tests stay together so
# that its module-scoped fixtures are built once, and all of tests/browser stays on one worker so
# that its demo community is simulated once (tests/conftest.py, SHARED_SCOPES).
TEST_WORKERS ?= 2

test: install
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadscope

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
