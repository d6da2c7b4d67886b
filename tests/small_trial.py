"""The small trial the trial tests run (FC-2 on synthetic data, 3 rounds, one worker), and the part of its rows
that says what it learnt: tests/study/test_trial.py and tests/test_gpu_trial.py compare runs by it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from runner.config import TrialConfig
from runner.study.results import MACHINE_COLUMNS


def small(tmp_path: Path, **sections) -> TrialConfig:
    raw = {
        "data": {"dataset": "synthetic", "num_clients": 50, "clients_per_round": 3},
        "model": {"arch": "fc2", "parameterization": "fedpara", "gamma": 0.5},
        "train": {"rounds": 3, "local_epochs": 1, "batch_size": 32, "lr": 0.05, "eval_every": 1},
        "resources": {"num_workers": 1, "cpus_per_worker": 0.5, "driver_cpus": 0.25},
        "logging": {"results_dir": str(tmp_path), "checkpoint_every": 1, "wandb": "disabled"},
        "seed": 3,
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values) if isinstance(values, dict) else raw.__setitem__(section, values)
    return TrialConfig.from_dict(raw)


def metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """Everything but wall-clock times and where/how the trial ran."""
    dropped = [*MACHINE_COLUMNS, *(c for c in frame.columns if c.startswith(("logging.", "resources.")))]
    return frame.drop(columns=dropped).reset_index(drop=True)
