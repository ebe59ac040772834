# Two commands on a fresh machine:  make run  |  make test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck check e2e screenshots clean-data help

help:
	@echo "make run    - set up everything and start Quorum on http://127.0.0.1:8501"
	@echo "make test   - set up and run the test suite"
	@echo "make check  - ruff + mypy"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
		|| { echo "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

run: $(STAMP)
	@scripts/check-system-packages.sh run
	HF_HUB_OFFLINE=1 $(BIN)/python -m core.cli up

test: $(STAMP)
	@scripts/check-system-packages.sh test
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -n 4 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy core workers pages ui streamlit_app.py

check: lint typecheck

clean-data:
	rm -rf .quorum
