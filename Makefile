# Two commands do all the set-up on a fresh machine:  make train-ham10000  and  make test.
# Both create .venv (Python 3.11) and install skinkeras with its pinned dependencies if needed.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DATA ?=
RUN_DIR ?=
SYNTH_DIR ?= runs/synthetic_ham10000
SYNTH_N ?= 600
SET ?=
EXPERIMENT ?=
PYTEST_ARGS ?=
# Tests run in parallel processes; a file stays in one process (its fixtures are built once) unless
# tests/conftest.py spreads it (SPREAD).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadgroup

.PHONY: install test test-slow test-all train-ham10000 clean

$(STAMP): setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed: '$(PYTHON)' was not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(XDIST) $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $(XDIST) $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS)

train-ham10000: $(STAMP)
	@$(BIN)/python apps/train_ham10000.py --data "$(DATA)" --out "$(RUN_DIR)" --experiment "$(EXPERIMENT)" \
		--synthetic-dir "$(SYNTH_DIR)" --synthetic-n $(SYNTH_N) $(foreach s,$(SET),--set $(s))

# Paper 002's two-stage pipeline on ISIC 2017 (DATA= the release folder, SEGMENTER= a U-Net run from
# `skinkeras train unet_ham10000_masks`); without DATA: generated data and tiny models, said so.
SEGMENTER ?=
ISIC_SYNTH_DIR ?= runs/synthetic_isic2017
ISIC_SYNTH_N ?= 240
.PHONY: train-isic2017
train-isic2017: $(STAMP)
	@$(BIN)/python apps/train_isic2017.py --data "$(DATA)" --segmenter "$(SEGMENTER)" --out "$(RUN_DIR)" \
		--synthetic-dir "$(ISIC_SYNTH_DIR)" --synthetic-n $(ISIC_SYNTH_N) $(foreach s,$(SET),--set $(s))

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
