# nodulekit: two commands on a fresh Linux machine with Python 3.10+
#   make demo   set up .venv and run the main job on the built-in synthetic data (60 scans;
#               about 5 minutes on 2 CPU cores; options: make demo DEMO_ARGS="--seed 1")
#   make test   set up .venv and run every check CI runs
# GPU users: make demo TORCH="torch --index-url https://download.pytorch.org/whl/cu124"

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU PyTorch, installed before anything that depends on torch (so no CUDA build sneaks in)
TORCH ?= torch==2.13.0
DEMO_OUT ?= nodulekit-demo
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: install demo test lint format clean

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test,notebooks,dicom]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/nodulekit demo --out $(DEMO_OUT) $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m tests.check_notebooks_stripped notebooks

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/nbstripout notebooks/*.ipynb

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
