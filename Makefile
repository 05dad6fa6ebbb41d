# celestial-ssh: the two commands are `make demo` and `make test` (see README).
# Both install what is missing (system packages, CRIU, the Python venv) and bring the lab up.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help deps venv lab lab-down lab-status demo test unit e2e lint clean bench

help:
	@echo "make demo      bring the two-host lab up and live-migrate a workload"
	@echo "make test      bring the lab up and run the whole suite (unit + end-to-end)"
	@echo "make lab       start the lab (lab-a, lab-b, lab-c) on loopback"
	@echo "make lab-down  stop the lab and remove everything it made"
	@echo "make bench     measure downtime and throughput on the lab (BENCH_ARGS=--help)"

deps:
	bash lab/install-deps.sh

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lab: deps venv
	bash lab/lab.sh up

lab-down:
	bash lab/lab.sh down

lab-status:
	bash lab/lab.sh status

demo: lab
	bash lab/demo.sh

lint: deps venv
	$(BIN)/ruff check celestial_ssh celestial_ssh_cli tests examples bench
	$(BIN)/ruff format --check celestial_ssh celestial_ssh_cli tests examples bench
	$(BIN)/mypy celestial_ssh
	$(BIN)/mypy --strict bench
	shellcheck -s sh celestial_ssh/scripts/*.sh
	shellcheck lab/*.sh examples/*.sh

test: lab lint
	$(BIN)/python -m pytest tests

unit: venv
	$(BIN)/python -m pytest tests/unit

e2e: lab
	$(BIN)/python -m pytest tests/e2e

bench: lab
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis
