"""Every file and folder in one sweep's results location (``<results>/<sweep>/``), named once.

Writers and readers (the engine's checkpoints, the study layer's rows, records, leases, figures) take their names
and paths from here, and the README's results table lists exactly :data:`ENTRIES` (tests/test_results_layout.py
compares them). The engine imports it too, so it sits beside ``runner/config.py``, below both layers.
"""

from __future__ import annotations

import os

from runner.engine.storage import Location

ROUNDS = "rounds"                  # rounds/<trial>.parquet: a trial's rows (runner/study/results.py)
ROWS_SUFFIX = ".parquet"
TRIALS = "trials"                  # trials/<trial>/: what one trial keeps (runner/engine/checkpoint.py)
CLIENT_STATE = "client-state"      # trials/<trial>/client-state/: clients' state pieces (engine/client_state_pieces.py)
TRIAL_CONFIG = "config.json"       # trials/<trial>/config.json: the config it ran with (runner/study/trial.py)
CHECKPOINT_PREFIX = "checkpoint-"  # trials/<trial>/checkpoint-<round>.pt (runner/engine/checkpoint.py)
CHECKPOINT_SUFFIX = ".pt"
CHECKSUM_SUFFIX = ".sha256"        # beside each checkpoint (runner/engine/storage.py write_checked)
WANDB_RUN_ID = "wandb_run_id"      # trials/<trial>/wandb_run_id: its W&B run (runner/study/wandb_run.py)
LEASE = "lease.json"               # who runs the sweep now (runner/study/sweep_lease.py)
WANDB = "wandb"                    # the W&B runs, when the results are on this node (runner/study/wandb_run.py)
TUNE = "tune"                      # Ray Tune's experiment state (runner/study/tune_sweep.py)
SWEEP_RECORD = "sweep.json"        # what the sweep was started with (runner/study/sweep_record.py)
PROBE = "probe.json"               # measured memory and speed per model (runner/study/probe.py)
STOPPED = "stopped"                # stopped/<trial>.json: stopped early by ASHA (runner/study/tune_search.py)
FIGURES = "figures"                # what runner.plot writes (runner/study/figures.py, runner/study/tables.py)
FIGURE3 = "fig3_accuracy_vs_gb.png"
FIGURE4 = "fig4_accuracy_vs_param_ratio.png"
GRID_FIGURE = "grid_accuracy_vs_param_ratio.png"
TABLES = "tables.md"

# The first column of the README's results table, in its order: each entry of a results location.
ENTRIES = (f"{ROUNDS}/<trial>{ROWS_SUFFIX}", f"{TRIALS}/<trial>/", f"{TRIALS}/<trial>/{CLIENT_STATE}/", LEASE,
           f"{WANDB}/", f"{TUNE}/", SWEEP_RECORD, PROBE, f"{STOPPED}/<trial>.json", f"{FIGURES}/")
# The names inside those entries the README's table must mention too.
INNER_NAMES = (TRIAL_CONFIG, f"{CHECKPOINT_PREFIX}<round>{CHECKPOINT_SUFFIX}", CHECKSUM_SUFFIX, WANDB_RUN_ID,
               FIGURE3, FIGURE4, GRID_FIGURE, TABLES)

Where = str | os.PathLike[str] | Location


def rounds_dir(results_dir: Where) -> Location:
    return Location(results_dir) / ROUNDS


def rounds_file(results_dir: Where, trial: str) -> Location:
    return rounds_dir(results_dir) / f"{trial}{ROWS_SUFFIX}"


def trial_folder(results_dir: Where, trial: str) -> Location:
    return Location(results_dir) / TRIALS / trial


def checkpoint_name(round_: int) -> str:
    return f"{CHECKPOINT_PREFIX}{round_:06d}{CHECKPOINT_SUFFIX}"


def lease_file(results_dir: Where) -> Location:
    return Location(results_dir) / LEASE


def record_file(results_dir: Where) -> Location:
    return Location(results_dir) / SWEEP_RECORD


def probe_file(results_dir: Where) -> Location:
    return Location(results_dir) / PROBE


def stopped_dir(results_dir: Where) -> Location:
    return Location(results_dir) / STOPPED


def stopped_file(results_dir: Where, trial: str) -> Location:
    return stopped_dir(results_dir) / f"{trial}.json"


def tune_dir(results_dir: Where) -> Location:
    return Location(results_dir) / TUNE


def figures_dir(results_dir: Where) -> Location:
    return Location(results_dir) / FIGURES
