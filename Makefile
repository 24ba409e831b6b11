# audiobeam developer commands. GNU make; needs Python 3.11 (python3.11 or python3).
#
#   make demo    set up .venv, embed examples/audio/* into out/ with Google's VGGish weights
#   make test    set up .venv and .venv-airflow, run the whole test suite
#   make bench   set up .venv, run the benchmark
#   make map     set up .venv, write map.html: the interactive map of the demo output
#
# Every target sets up what it needs first; .venv is (re)installed only when setup.py
# (the one dependency list) changes. `make help` lists targets and variables.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

# --- variables (override on the command line: make demo CHECKPOINT=... PCA_PARAMS=...) ---
PYTHON ?= $(firstword $(shell command -v python3.11 2>/dev/null) $(shell command -v python3 2>/dev/null) python3.11)
VENV ?= .venv
VENV_PY := $(VENV)/bin/python
# Test-only packages installed without their dependencies (torchvggish: the reference
# front end as a parity oracle, loaded by file path so torch is not needed).
TEST_NODEPS_PACKAGES ?= torchvggish==0.2
# Test-only oracle files taken from wheels that must not be installed: torchaudio's
# compliance/kaldi.py (AST's fbank oracle), extracted from the torchaudio wheel into
# .cache/test-oracles/ by tests/kaldi_oracle.py (torchaudio's CUDA wheel breaks CPU torch).
TEST_ORACLES ?= tests/kaldi_oracle.py
PIP_FLAGS ?=

AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_REQUIREMENTS ?= dags/requirements-airflow.txt
AIRFLOW_CONSTRAINTS ?= dags/constraints-airflow.txt

# Demo: weights are downloaded once into ~/.cache/audiobeam unless given here
# (local, gs:// or s3:// paths).
CHECKPOINT ?=
PCA_PARAMS ?=
DEMO_INPUT ?= examples/audio/*
DEMO_OUT ?= out
DEMO_CONFIG ?= configs/local.yaml
DEMO_ARGS ?=
MAP_OUT ?= map.html
WEIGHTS_FLAGS := $(if $(CHECKPOINT),--checkpoint '$(CHECKPOINT)') $(if $(PCA_PARAMS),--pca_params '$(PCA_PARAMS)')

, := ,
PYTEST_ARGS ?=
BENCH_ARGS ?=

# Map: python -m pipelines.map over the demo output (MAP_ARGS=... adds flags, e.g.
# MAP_ARGS="--method pca --color_by container --png map.png").
MAP_ARGS ?=

.PHONY: help venv demo map test airflow-venv bench examples clean distclean

help:
	@echo "audiobeam make targets:"
	@echo "  make demo          set up $(VENV), embed $(DEMO_INPUT) into $(DEMO_OUT)/ (replacing the last demo's outputs), print a summary"
	@echo "                     CHECKPOINT=path PCA_PARAMS=path to use local/gs:///s3:// weights instead of downloading"
	@echo "  make map           set up $(VENV), write $(MAP_OUT): the interactive map of $(DEMO_OUT)/ (run make demo first; MAP_ARGS=...)"
	@echo "  make test          set up $(VENV) and $(AIRFLOW_VENV), run pytest on tests/ (PYTEST_ARGS=... to add flags)"
	@echo "  make bench         set up $(VENV), run python -m bench (BENCH_ARGS=...)"
	@echo "  make venv          create/refresh $(VENV) only (pip install -e '.[test]')"
	@echo "  make airflow-venv  create $(AIRFLOW_VENV) from $(AIRFLOW_REQUIREMENTS)"
	@echo "  make examples      regenerate examples/audio/ and its MANIFEST.json"
	@echo "  make clean         remove $(DEMO_OUT)/, $(MAP_OUT), build/, dist/, caches (keeps the venvs)"
	@echo "  make distclean     clean, and remove $(VENV) and $(AIRFLOW_VENV)"
	@echo "Python used to create venvs: $(PYTHON) (override with PYTHON=...)"

# --- environments --------------------------------------------------------------------

# The stamp is the real target: rebuilt when setup.py changes. An existing venv is
# reused (never wiped); pip then only installs what changed.
$(VENV)/.installed: setup.py
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "error: audiobeam needs Python 3.11; '$(PYTHON)' is $$($(PYTHON) -V 2>&1)." >&2; \
	  echo "       Install python3.11 or run: make $(MAKECMDGOALS) PYTHON=/path/to/python3.11" >&2; \
	  exit 1; }
	@test -x $(VENV_PY) || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@$(VENV_PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "error: $(VENV) was made with $$($(VENV_PY) -V 2>&1), audiobeam needs 3.11: make distclean" >&2; exit 1; }
	$(VENV_PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(VENV_PY) -m pip install $(PIP_FLAGS) -e '.[test]'
	$(if $(strip $(TEST_NODEPS_PACKAGES)),$(VENV_PY) -m pip install $(PIP_FLAGS) --no-deps $(TEST_NODEPS_PACKAGES))
	$(foreach oracle,$(TEST_ORACLES),$(VENV_PY) $(oracle) || echo "warning: $(oracle) could not fetch its oracle; the tests that need it will skip" >&2;)
	@touch $@

venv: $(VENV)/.installed

# Airflow lives in its own venv (its pins conflict with Beam's); the cloud engineer's
# requirements file defines it. Until that file exists the target is a no-op.
airflow-venv: $(if $(wildcard $(AIRFLOW_REQUIREMENTS)),$(AIRFLOW_VENV)/.installed)
	$(if $(wildcard $(AIRFLOW_REQUIREMENTS)),,@echo "note: $(AIRFLOW_REQUIREMENTS) does not exist yet; skipping $(AIRFLOW_VENV)")

$(AIRFLOW_VENV)/.installed: $(AIRFLOW_REQUIREMENTS) $(wildcard $(AIRFLOW_CONSTRAINTS))
	@test -x $(AIRFLOW_VENV)/bin/python || { echo "creating $(AIRFLOW_VENV) with $(PYTHON)"; $(PYTHON) -m venv $(AIRFLOW_VENV); }
	$(AIRFLOW_VENV)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install $(PIP_FLAGS) -r $(AIRFLOW_REQUIREMENTS) \
	  $(if $(wildcard $(AIRFLOW_CONSTRAINTS)),-c $(AIRFLOW_CONSTRAINTS))
	@touch $@

# --- user commands -------------------------------------------------------------------

demo: $(VENV)/.installed
	$(VENV_PY) -m pipelines.embed --config $(DEMO_CONFIG) --input '$(DEMO_INPUT)' \
	  --output '$(DEMO_OUT)/' $(WEIGHTS_FLAGS) $(DEMO_ARGS) || { status=$$?; \
	  echo "make demo: the pipeline failed (exit $$status)." >&2; \
	  $(if $(CHECKPOINT),:,echo "  Offline? Fetch Google's weights elsewhere and run: make demo \
	  CHECKPOINT=PATH/vggish_model.ckpt PCA_PARAMS=PATH/vggish_pca_params.npz (local$(,) gs:// or s3://)" >&2); \
	  exit $$status; }

map: $(VENV)/.installed
	@test -f '$(DEMO_OUT)/run.json' || { echo "make map: no finished output in $(DEMO_OUT)/; run make demo first" >&2; exit 1; }
	$(VENV_PY) -m pipelines.map --input '$(DEMO_OUT)' --output '$(MAP_OUT)' $(MAP_ARGS)
	@echo "open $(MAP_OUT) in a browser (it works offline)"

# A module that fails to import is reported (and fails the run) without hiding the
# results of every other module.
test: $(VENV)/.installed airflow-venv
	$(VENV_PY) -m pytest -q -p no:cacheprovider --durations=15 --continue-on-collection-errors \
	  tests/ $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(VENV_PY) -m bench $(BENCH_ARGS)

examples: $(VENV)/.installed
	$(VENV_PY) examples/make_examples.py

clean:
	rm -rf -- '$(DEMO_OUT)' '$(MAP_OUT)' build dist .pytest_cache .hypothesis *.egg-info
	find . -path ./$(VENV) -prune -o -path ./$(AIRFLOW_VENV) -prune -o \
	  -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf -- $(VENV) $(AIRFLOW_VENV)
