# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SHARED_TRACES := $(abspath ../shared/data/traces)
export WORKBENCH_DATA_DIR ?= $(if $(wildcard $(SHARED_TRACES)),$(SHARED_TRACES),)
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg

.PHONY: setup demo test test-py test-nb lint lab bench figures clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m workbench.cli demo --out out

test: test-py test-nb

test-py: setup
	$(PY) -m pytest -n 2 --dist loadfile tests

test-nb: setup
	$(PY) -m pytest --nbval --nbval-sanitize-with notebooks/sanitize.cfg --nbval-current-env -p no:randomly notebooks

lint: setup
	$(PY) -m ruff check workbench tests benchmarks

lab: setup
	$(VENV)/bin/jupyter lab notebooks

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

figures: setup
	$(PY) -m workbench.cli figures --out out/figures

clean:
	rm -rf $(VENV) out .pytest_cache
