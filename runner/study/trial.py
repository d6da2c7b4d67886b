"""One trial as a study runs it: its data checked, its rows written to Parquet and W&B (and Tune).

:func:`run_trial` is what a sweep's Tune trainable and the tests call; it checks that the dataset is
on disk before any actor starts, records the config beside the checkpoint, and runs the engine with
the standard sinks (runner/study/results.py, runner/study/wandb_run.py). What the sweep decided once
(W&B mode and key, code version: runner/study/sweep_context.py) comes as ``context``; a trial run on its
own decides it from its own process. A trial whose rows say it diverged is left stopped, as ASHA's are.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

import partitions
from runner.config import DataConfig, TrialConfig
from runner.engine.checkpoint import trial_dir
from runner.engine.trial import RoundSink, run_rounds
from runner.provenance import provenance
from runner.results_layout import TRIAL_CONFIG
from runner.study.results import RoundsTable, rounds_path
from runner.study.sweep_context import SweepContext
from runner.study.wandb_run import WandbRun

log = logging.getLogger(__name__)
METRICS_REPORTED = ("round", "test_accuracy", "test_loss", "val_accuracy", "val_loss", "train_loss",
                    "cumulative_bytes", "round_seconds")


class Report(RoundSink):
    """Hands a few metrics of every evaluated row to a callback (Ray Tune's ``tune.report``, a test's probe).

    Rounds without an evaluation (``train.eval_every``) are not reported: their test accuracy is NaN, and a
    Tune scheduler or searcher that compared it would record NaN for the trial (ASHA would let it pass a rung
    unjudged). The rows themselves all go to Parquet and W&B; the last round is always evaluated.
    """

    def __init__(self, report: Callable[[dict[str, Any]], None]) -> None:
        self.report = report

    def write(self, row: Mapping[str, Any]) -> None:
        if not math.isnan(row["test_accuracy"]):
            self.report({k: row[k] for k in METRICS_REPORTED})


def last_evaluated(rows: pd.DataFrame) -> dict[str, Any] | None:
    """The metrics of a trial's last evaluated row, as :class:`Report` hands them on (None before any)."""
    evaluated = rows[rows["test_accuracy"].notna()]
    if not len(evaluated):
        return None
    last = evaluated.iloc[-1]
    return {k: last[k].item() if hasattr(last[k], "item") else last[k] for k in METRICS_REPORTED}


def trial_rows(cfg: TrialConfig) -> pd.DataFrame:
    """The rows a trial has written so far (none: an empty frame)."""
    return RoundsTable(rounds_path(cfg.logging.results_dir, cfg.trial_name)).frame()


def check_dataset(data: DataConfig) -> None:
    """Fail before any actor starts when a trial's dataset is not on disk, saying which settings to change."""
    try:
        partitions.check_available(data.dataset, os.path.expanduser(data.root), download=data.download)
    except partitions.DatasetNotFoundError as error:
        raise partitions.DatasetNotFoundError(
            f"{error} (in the config: data.root is where datasets live; data.download: true fetches "
            f"{', '.join(partitions.downloadable())})") from None


def run_trial(cfg: TrialConfig, *, report: Callable[[dict[str, Any]], None] | None = None,
              context: SweepContext | None = None) -> pd.DataFrame:
    """Run (or resume) one trial to its last round; returns all of its rows."""
    check_dataset(cfg.data)
    context = context or SweepContext.here()
    labels = provenance(context.code)
    (trial_dir(cfg) / TRIAL_CONFIG).write_bytes(json.dumps(cfg.to_dict(), indent=2).encode())
    table = RoundsTable(rounds_path(cfg.logging.results_dir, cfg.trial_name), labels)
    if table.diverged_at is not None:  # it stopped there in an earlier run: rerunning would diverge again
        log.warning("trial %s diverged at round %d in an earlier run: left stopped", cfg.trial_name,
                    table.diverged_at)
        return table.frame()
    if table.last_round >= cfg.train.rounds:  # finished in an earlier run: no actor need start to say so
        return table.frame()
    sinks: list[RoundSink] = [table, WandbRun(cfg, context.wandb, table, labels)]
    if report is not None:
        sinks.append(Report(report))
    run_rounds(cfg, sinks)
    return table.frame()
