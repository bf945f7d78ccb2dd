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

.PHONY: install system-packages data materialize run lint test test-fast clean

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

# Debian's Chromium for the browser tests (Playwright drives /usr/bin/chromium; it never
# downloads a browser) and PostgreSQL for the production instance's tests (the tests start
# the cluster and create their own database). Installed when this runs as root with
# apt-get; otherwise those tests are skipped with the reason in the summary (CI=true never
# skips them).
system-packages:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's$$missing for the browser and PostgreSQL tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "note:$$missing missing and cannot be installed here (not root, or no apt-get): their tests will be skipped"; fi

# ruff's lint and format check (settings in pyproject.toml); `ruff format .` fixes the format
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install system-packages lint
	$(BIN)/python -m pytest -n 2 --dist loadfile -rs

test-fast: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow"

clean:
	rm -rf data .dagster/storage .dagster/history .dagster/schedules .dagster/logs
