# Set-up and entry points. Every target creates the virtual environment first if needed.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 5000
export PATH := $(abspath $(BIN)):$(PATH)
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
# pip.conf on some machines names local indexes that do not exist; drop that noise only.
QUIET_PIP := 2>&1 | { grep -v '^WARNING: Location' || true; }

TASK   ?= sst2
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup postgres browser fonts check run summary sync-runs test test-fast test-model ui serve clean

setup: $(STAMP)  ## create .venv and install the pinned dependencies

$(STAMP): requirements.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt $(QUIET_PIP)
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt $(QUIET_PIP)
	$(BIN)/python -c "import pipeline.runtime.tf_runtime, bert4keras, mlflow, dvc; print('environment ready')"
	-$(BIN)/python -m pipeline.commands.check --links-only  # DVC experiments in temporary copies reach ../shared
	touch $@

postgres:  ## PostgreSQL server programs, for the team tracking server (pipeline.commands.team_server) and its test
	@if ! command -v pg_ctl >/dev/null && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
	  $(SUDO) mkdir -p /etc/postgresql-common/createcluster.d && \
	  echo 'create_main_cluster = false' | $(SUDO) tee /etc/postgresql-common/createcluster.d/no-main-cluster.conf >/dev/null && \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi

browser:  ## Debian's chromium + chromedriver for the browser check of the MLflow UI (if missing)
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation; \
	fi

fonts:  ## a font with Chinese glyphs for the plots (Debian's fonts-wqy-zenhei), if none is there; a warning if it cannot be installed
	@if ! fc-list :lang=zh 2>/dev/null | grep -q . && [ ! -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ]; then \
	  { $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-wqy-zenhei >/dev/null; } || \
	  echo "warning: could not install fonts-wqy-zenhei: Chinese labels in plots will show as boxes" >&2; \
	fi

check: setup  ## validate params.yaml, the data files and backbone sources it names (seconds, no TensorFlow)
	$(BIN)/python -m pipeline.commands.check

run: setup fonts  ## run the default pipeline (dvc repro) on params.yaml, then write reports/summary.md and reports/timings.md
	$(BIN)/python -m pipeline.commands.check
	$(BIN)/dvc repro
	$(BIN)/python -m pipeline.commands.summary
	$(BIN)/python -m pipeline.commands.stage_timings > /dev/null

summary: setup  ## reports/summary.md: every task's latest metrics beside its best MLflow run
	$(BIN)/python -m pipeline.commands.summary

sync-runs: setup  ## push runs kept locally while the tracking server was unreachable (mlflow-outbox/)
	$(BIN)/python -m pipeline.commands.sync_runs

test: setup postgres browser fonts  ## run the whole test suite: every tier (unit, model, e2e)
	$(BIN)/python -m pytest

test-fast: setup  ## tier 1, the unit tests: no TensorFlow, well under a minute
	$(BIN)/python -m pytest -m unit

test-model: setup  ## tier 2: the tests that build, train or load small TensorFlow/bert4keras models (minutes)
	$(BIN)/python -m pytest -m model

ui: setup  ## open the MLflow UI on http://$(HOST):$(PORT)
	$(BIN)/python -m pipeline.commands.ui --host $(HOST) --port $(PORT)

serve: setup  ## serve TASK's latest MLflow model on http://$(HOST):5001/invocations
	$(BIN)/python -m pipeline.commands.serve $(TASK) --host $(HOST) --port 5001

clean:  ## remove the virtual environment
	rm -rf $(VENV)
