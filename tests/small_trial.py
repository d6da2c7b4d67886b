"""The small trial the trial tests run (FC-2 on synthetic data, 3 rounds, one worker), and the part of its rows
that says what it learnt: tests/study/test_trial.py and tests/test_gpu_trial.py compare runs by it; and a
hand-made row of a trial, for the tests that write and read rows without running one."""

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


def row(round_: int, trial: str = "t") -> dict:
    """One hand-made results row of FC-2 trial ``trial`` at ``round_`` (accuracy 0.1 a round, 1000 bytes a round)."""
    cfg = TrialConfig.from_dict({"model": {"arch": "fc2"}, "name": trial, "sweep": "unit"})
    return {**cfg.flat(), "trial": trial, "round": round_, "test_accuracy": 0.1 * round_, "param_ratio": 0.5,
            "cumulative_bytes": 1000 * round_, "num_parameters": 10, "original_parameters": 20}


class Crash(RuntimeError):
    """A simulated crash of the trial's process."""


def crash_after(round_: int):
    """A report callback that crashes once round ``round_``'s row is written, before its checkpoint."""
    def report(reported: dict) -> None:
        if reported["round"] == round_:
            raise Crash(f"after round {round_}'s row, before its checkpoint")
    return report
