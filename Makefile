# Two commands on a fresh machine: `make run` (the main job on the defaults)
# and `make test`. Both create .venv when missing and install pinned versions.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
CONSTRAINTS := constraints.txt

.PHONY: run test lab install install-test clean-generated lock

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

## run: the main job on the embedded defaults (generate -> prepare -> train -> evaluate)
run: install
	$(BIN)/churn run

## test: the whole test suite
test: install-test
	$(BIN)/python -m pytest

## lab: add JupyterLab (kept out of the pipeline install: it slows every kernel start) and open the notebooks
lab: install
	$(PIP) install --quiet -c $(CONSTRAINTS) -e '.[lab]'
	$(BIN)/jupyter lab notebooks/

## clean-generated: remove generated data, registry, reports and logs (keeps the placeholders)
clean-generated:
	find data registry reports logs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +

## lock: re-pin constraints.txt from the current venv (after a deliberate upgrade)
lock:
	$(PIP) freeze --exclude-editable | grep -v '^-e ' > $(CONSTRAINTS)
