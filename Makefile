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

.PHONY: setup run test test-fast ui clean

setup: $(STAMP)  ## create .venv and install the pinned dependencies

$(STAMP): requirements.txt requirements-nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt $(QUIET_PIP)
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt $(QUIET_PIP)
	$(BIN)/python -c "import pipeline.tf_runtime, bert4keras, mlflow, dvc; print('environment ready')"
	touch $@

run: setup  ## run the default pipeline (dvc repro) on params.yaml
	$(BIN)/dvc repro

test: setup  ## run the whole test suite
	$(BIN)/python -m pytest

test-fast: setup  ## the unit tests only (no end-to-end DAG run)
	$(BIN)/python -m pytest -m "not e2e"

ui: setup  ## open the MLflow UI on http://$(HOST):$(PORT)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host $(HOST) --port $(PORT)

clean:  ## remove the virtual environment
	rm -rf $(VENV)
