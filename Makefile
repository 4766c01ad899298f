# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the compiled simulator core (setup.py): rebuilt in place when its .py or .pxd sources change
CORE_PXD := $(wildcard workbench/sim/*.pxd workbench/hardware/*.pxd)
CORE_SRC := $(CORE_PXD) $(patsubst %.pxd,%.py,$(CORE_PXD))
CORE_STAMP := $(VENV)/.core
SHARED_TRACES := $(abspath ../shared/data/traces)
export WORKBENCH_DATA_DIR ?= $(if $(wildcard $(SHARED_TRACES)),$(SHARED_TRACES),)
export PYTHONHASHSEED := 0
export MPLBACKEND := Agg
# the suite checks the compiled simulator core is built (set to 0 without a C compiler: pure Python)
export WORKBENCH_REQUIRE_COMPILED ?= 1

.PHONY: setup demo test test-py test-nb test-browser lint lab app bench bench-anchors figures lock clean

# constraints.txt pins every dependency (make lock regenerates it): the same versions today and next year
$(STAMP): pyproject.toml setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP) $(CORE_STAMP)

$(CORE_STAMP): $(STAMP) $(CORE_SRC)
	$(PY) -m pip install -q --no-deps -e .
	touch $(CORE_STAMP)

setup: $(STAMP) $(CORE_STAMP)

demo: setup
	$(PY) -m workbench.cli demo --out out

test: lint test-py test-nb

test-py: setup
	$(PY) -m pytest -n 2 --dist loadfile tests

test-nb: setup
	$(PY) -m pytest --nbval --nbval-sanitize-with notebooks/sanitize.cfg --nbval-current-env -p no:randomly notebooks

lint: setup
	$(PY) -m ruff check workbench tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m mypy workbench

lab: setup
	$(VENV)/bin/jupyter lab notebooks

app: setup
	$(PY) -m workbench.cli app $(APP_ARGS)

bench: setup
	for b in benchmarks/bench_*.py; do [ $$b = benchmarks/bench_anchors.py ] || $(PY) $$b || exit 1; done

# the workbench next to vidur and vllm-sr-sim (installed from PyPI into benchmarks/_tmp/anchors-venv)
bench-anchors: setup
	$(PY) benchmarks/bench_anchors.py

figures: setup
	$(PY) -m workbench.cli figures --out out/figures

# the browser test alone (Selenium + Debian's chromium; .ci/run installs it)
test-browser: setup
	$(PY) -m pytest -p no:randomly tests/test_app_browser.py

# re-resolve the newest versions allowed by pyproject.toml into constraints.txt (in a scratch venv)
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip && .lock-venv/bin/pip install -q -e '.[dev]'
	{ sed -n '1,3p' constraints.txt; .lock-venv/bin/pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .lock-venv

clean:
	rm -rf $(VENV) out .pytest_cache
