# The two commands of the README:
#   make run   install, generate sample data, materialise everything, serve the UI
#   make test  install and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PERSONS ?= 10000
SEED ?= 42
HOST ?= 127.0.0.1
PORT ?= 3000
export DAGSTER_HOME := $(CURDIR)/.dagster

.PHONY: install data materialize run test test-fast clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

data: install
	$(BIN)/python -m cdm_assets.sample --persons $(PERSONS) --seed $(SEED) --out data

materialize: data
	$(BIN)/dagster asset materialize -m cdm_assets --select '*'

run: materialize
	mkdir -p $(DAGSTER_HOME)/.nux && echo 'seen: 1' > $(DAGSTER_HOME)/.nux/nux.yaml
	$(BIN)/dagster dev -m cdm_assets -h $(HOST) -p $(PORT)

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile

test-fast: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow"

clean:
	rm -rf data .dagster/storage .dagster/history .dagster/schedules .dagster/logs
