# Two commands on a fresh machine: `make run` (the main job on the defaults)
# and `make test`. Both create .venv when missing and install pinned versions.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
CONSTRAINTS := constraints.txt

LAB_VENV ?= .venv-lab

.PHONY: run test serve lab install install-test system-deps clean-generated lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed-run: $(BIN)/python pyproject.toml $(CONSTRAINTS)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-run
	$(PIP) install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $@

install: $(VENV)/.installed-run
install-test: $(VENV)/.installed-test

## system-deps: Debian packages the tests need: headless Chromium renders the HTML reports, and
## LightGBM's wheel links the system's OpenMP runtime (libgomp1)
system-deps:
	@NEED=""; command -v chromium >/dev/null 2>&1 || NEED="chromium"; \
	  { ldconfig -p 2>/dev/null || /sbin/ldconfig -p; } | grep -q 'libgomp\.so\.1' || NEED="$$NEED libgomp1"; \
	  [ -z "$$NEED" ] || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$NEED \
	  || { $$SUDO apt-get update && \
	       $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$NEED; }; }

## run: the main job on the embedded defaults: the stage notebooks 01-04 for one new version, with HTML reports
run: install
	$(BIN)/churn run

## test: the layering contract (import-linter, config in pyproject.toml), then the whole test suite
test: install-test system-deps
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

## serve: serve the current model on 127.0.0.1:8000 (churn serve; SERVE_HOST, SERVE_PORT, SERVE_WORKERS override)
SERVE_HOST ?= 127.0.0.1
SERVE_PORT ?= 8000
SERVE_WORKERS ?= 1
serve: install
	$(BIN)/churn serve --host $(SERVE_HOST) --port $(SERVE_PORT) --workers $(SERVE_WORKERS)

## lab: JupyterLab on the notebooks, in its own venv (.venv-lab): in the pipeline's venv it slows every kernel start
lab:
	[ -x $(LAB_VENV)/bin/python ] || $(PYTHON) -m venv $(LAB_VENV)
	$(LAB_VENV)/bin/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[lab]'
	$(LAB_VENV)/bin/jupyter lab churn_lib/notebooks/

## clean-generated: remove generated data, registry, reports and logs (keeps the placeholders)
clean-generated:
	find data registry reports logs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +

## lock: re-pin constraints.txt from the current venv (after a deliberate upgrade)
lock:
	$(PIP) freeze --exclude-editable | grep -v '^-e ' > $(CONSTRAINTS)
