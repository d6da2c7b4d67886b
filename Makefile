# Two commands for a newcomer on a fresh machine:
#   make demo   set up .venv and run the quickstart sweep (local Ray, synthetic data, W&B offline)
#   make test   set up .venv and run the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint bench report clean min-versions offline-bundle gpu-check \
        local-cluster local-cluster-down local-cluster-walk

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch 2.14.1 / torchvision 0.29.1 install from this machine's disk; elsewhere pip picks a matching build.
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1 || $(BIN)/python -m pip install -q torch torchvision
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m runner.sweep sweeps/quickstart.yaml

# two test processes (pytest-xdist), each with its own local Ray and its own run of the session's shared fixtures:
# serially the trials' tests leave a core idle about half the time, waiting on process start-ups
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

# the longer walks (a real offline bundle, a job through Ray's job server, private clusters with logical GPUs and
# lost nodes, the local autoscaling cluster's walk, also alone as make local-cluster-walk): ~8 min, run by CI too
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# cluster.yaml's cluster as processes on this machine, with Ray's autoscaler (README, "Try it on one machine")
local-cluster: $(STAMP)
	$(BIN)/python -m runner.local_cluster up

local-cluster-down: $(STAMP)
	$(BIN)/python -m runner.local_cluster down

# The walk against its own local cluster (also part of test-slow): 5-8.5 min on the shared 2-core machine (load 10-17)
local-cluster-walk: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests/test_autoscaling_cluster.py

# The lowest Ray and W&B that pyproject.toml allows, installed for real and tested (slow: not part of `make test`).
# A throwaway venv sees .venv's packages (torch, pytest, ...) behind its own, so only Ray, W&B and what they pin
# are installed.
MIN_VENV := .venv-min
MIN_TESTS := tests/study/test_sweep_resume.py tests/study/test_console_view.py tests/study/test_wandb_run.py \
             tests/study/test_wandb_access.py tests/study/test_trial.py::test_trial_writes_parquet_and_an_offline_wandb_run \
             tests/study/test_trial.py::test_a_resumed_trial_continues_its_wandb_run_from_a_file_uri
LOWER_BOUNDS := import re, tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; \
                print(" ".join(re.sub(r">=([^,]+).*", r"==\1", d) for d in deps if re.match(r"(ray|wandb)\b", d)))

min-versions: $(STAMP)
	rm -rf $(MIN_VENV)
	$(PY) -m venv $(MIN_VENV)
	$(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > \
	  "$$($(MIN_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz-main-venv.pth"
	$(MIN_VENV)/bin/python -m pip install -q $$($(BIN)/python -c '$(LOWER_BOUNDS)')
	$(MIN_VENV)/bin/python -c 'import ray, wandb; print("testing ray", ray.__version__, "wandb", wandb.__version__)'
	PYTHONPATH=$(CURDIR) $(MIN_VENV)/bin/python -m pytest -q $(MIN_TESTS)

bench: $(STAMP)
	$(BIN)/python bench/runner_vs_plain.py

# One self-extracting file with the runner, Ray and W&B for a machine with no package index (README, "Air-gapped
# GPU machines"): make offline-bundle PYTHON=3.12 [HAVE_FILE=the-targets-pip-freeze.txt]
PYTHON ?=
HAVE_FILE ?=
offline-bundle: $(STAMP)
	$(BIN)/python -m runner.bundle $(if $(PYTHON),--python $(PYTHON)) $(if $(HAVE_FILE),--have-file $(HAVE_FILE))

# On a GPU machine: every GPU test and bench in one go (~9 min), tables into results/gpu-check/summary.md
gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py --out results/gpu-check

report: $(STAMP)
	$(BIN)/python -m models.report

clean:
	rm -rf results wandb .pytest_cache
