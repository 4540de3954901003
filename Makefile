# virtwatch: everything a developer or CI runs. `make test` is the README's test command.
PYTHON := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup setup-test test run bench

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

test: setup-test
	$(PYTHON) -m pytest $(PYTEST_ARGS)

run: setup
	.venv/bin/virtwatch demo

bench: setup-test
	@set -e; for bench in benchmarks/bench_*.py; do \
		[ -e "$$bench" ] || { echo "no benchmarks/bench_*.py yet"; break; }; \
		echo "== $$bench"; $(PYTHON) "$$bench"; \
	done
