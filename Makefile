# Two commands for a newcomer on a fresh machine:
#   make demo   set up .venv and run the quickstart sweep (local Ray, synthetic data, W&B offline)
#   make test   set up .venv and run the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench report clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch 2.14.1 / torchvision 0.29.1 install from this machine's disk; elsewhere pip picks a matching build.
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1 || $(BIN)/python -m pip install -q torch torchvision
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m runner.sweep sweeps/quickstart.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/runner_vs_plain.py

report: $(STAMP)
	$(BIN)/python -m models.report

clean:
	rm -rf results wandb .pytest_cache
