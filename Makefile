# The two quickstart commands are `make demo` and `make test`; both set everything up first.
VENV ?= .venv
QUESTION ?= What is 17 + 25?

.PHONY: setup demo test test-fast lint bench clean

setup:
	@scripts/setup

demo: setup
	$(VENV)/bin/swarmrank ask "$(QUESTION)"

# two workers: much of the suite waits on subprocesses, servers and sleeps; --dist loadfile keeps a
# file's tests (and its module fixtures: a loaded model, a Ray cluster) on one worker
PYTEST_WORKERS ?= 2

test: setup
	scripts/with-postgres $(VENV)/bin/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test-fast: setup
	$(VENV)/bin/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m "not model"

lint: setup
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

bench: setup
	$(VENV)/bin/python benchmarks/bench_overhead.py
	$(VENV)/bin/python benchmarks/bench_bt.py
	$(VENV)/bin/python benchmarks/bench_llamacpp.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
