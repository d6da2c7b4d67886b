"""The trial's W&B run, opened through Ray's W&B integration (``setup_wandb``).

One run per trial: name = trial name, group = sweep name, config = the flat trial config plus the code
version. A fresh trial (no checkpoint) gets a fresh run id, stored next to its checkpoint
(``trials/<trial>/wandb_run_id``); only a trial that resumes from its checkpoint continues that run, so a
re-run after ``make clean`` or into a new ``--results`` never writes into an old run.

Every round is logged at step = round, with ``round`` and ``cumulative_gb`` declared as the two axes
(``define_metric``): each per-round metric is drawn against rounds, and ``by_gb/test_accuracy`` against
cumulative transferred GB. At the end the summary holds the final numbers (runner/study/results.py), or, for
a trial that diverged, ``diverged`` ("diverged at round r (...)") instead of a final accuracy.

Runs live on the local disk of the node that ran the trial (W&B needs a local directory): under
``<results>/wandb`` for a local ``--results``, else under ``~/fedpara-wandb/<sweep>``. Offline runs are
uploaded later with ``wandb sync``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.config import TrialConfig
from runner.engine.checkpoint import trial_dir
from runner.engine.storage import Location
from runner.engine.trial import RoundSink
from runner.results_layout import WANDB, WANDB_RUN_ID
from runner.study.results import BYTES_PER_GB, RoundsTable, final_numbers
from runner.study.wandb_access import DEFAULT_HOST, WandbAccess

RUN_ID_FILE = WANDB_RUN_ID  # the name's home: runner/results_layout.py
LOCAL_ROOT = "~/fedpara-wandb"  # where runs go when the results are not on this machine's disk
ROUND_AXIS, GB_AXIS = "round", "cumulative_gb"
BY_GB = ("test_accuracy",)      # also logged as by_gb/<name>, drawn against cumulative GB
SUMMARY_ONLY = ("diverged",)    # row fields that go to the summary at the end, not to the history


def local_dir(results_dir: str | Location, sweep: str) -> Path:
    """The directory W&B writes under (runs land in ``<it>/wandb/``) on the node that runs a trial."""
    local = Location(results_dir).local_path
    return local if local is not None else Path(LOCAL_ROOT).expanduser() / (sweep or "adhoc")


def open_run(cfg: TrialConfig, access: WandbAccess, *, run_id: str, resume: str,
             config: Mapping[str, Any]) -> Any | None:
    """Start (or continue) the trial's W&B run; None when W&B is disabled."""
    if access.mode == "disabled":
        return None
    os.environ.setdefault("WANDB_SILENT", "true")
    from ray.air.integrations.wandb import setup_wandb

    directory = local_dir(cfg.logging.results_dir, cfg.sweep)
    (directory / WANDB).mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {}
    if access.host != DEFAULT_HOST:
        import wandb

        extra["settings"] = wandb.Settings(base_url=access.host)
    # Ray's integration skips its API-key check only when WANDB_MODE is set; set it for this call alone,
    # so that the next trial in this process decides afresh
    previous = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = access.mode
    try:
        return setup_wandb(
            config=dict(config), api_key=access.api_key if access.mode == "online" else None,
            trial_id=run_id, trial_name=cfg.trial_name, group=cfg.sweep or "adhoc",
            project=cfg.logging.wandb_project, dir=str(directory), mode=access.mode, resume=resume,
            reinit="create_new", **extra)
    finally:
        if previous is None:
            os.environ.pop("WANDB_MODE", None)
        else:
            os.environ["WANDB_MODE"] = previous


class WandbRun(RoundSink):
    """The trial's W&B run as a sink: every round's metrics at step = round, the final numbers in the summary.

    ``table`` holds the trial's rows (all of them, also those before a resume), from which the summary's
    final numbers are computed the one way tables and figures compute them; ``labels`` (the code version)
    join the run's config.
    """

    def __init__(self, cfg: TrialConfig, access: WandbAccess, table: RoundsTable,
                 labels: Mapping[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.access = access.for_trial(cfg.logging.wandb)
        self.table = table
        self.labels = dict(labels or {})
        self.run: Any = None
        self.constants: set[str] = set()
        self.defined: set[str] = set()

    def open(self, resumed_after: int, constants: Mapping[str, Any]) -> None:
        self.constants = set(constants)
        if self.access.mode == "disabled" or resumed_after >= self.cfg.train.rounds or self.table.diverged_at:
            return  # nothing will be logged: a finished (or diverged) trial keeps its run as it is
        id_file = trial_dir(self.cfg) / RUN_ID_FILE
        if resumed_after and id_file.exists():
            run_id, resume = id_file.read_bytes().decode().strip(), "allow"
        else:  # a fresh trial, or one whose run was never opened: a run of its own
            run_id, resume = uuid.uuid4().hex[:16], "never"
            id_file.write_bytes(run_id.encode())
        self.run = open_run(self.cfg, self.access, run_id=run_id, resume=resume,
                            config={**self.cfg.flat(), **self.labels})
        if self.run is not None:
            self.run.define_metric(ROUND_AXIS)
            self.run.define_metric(GB_AXIS)
            for name in BY_GB:
                self.run.define_metric(f"by_gb/{name}", step_metric=GB_AXIS)

    def write(self, row: Mapping[str, Any]) -> None:
        if self.run is None:
            return
        metrics = {k: v for k, v in row.items() if k not in self.constants and k not in self.labels
                   and k not in SUMMARY_ONLY}
        metrics[GB_AXIS] = row["cumulative_bytes"] / BYTES_PER_GB
        metrics.update({f"by_gb/{name}": row[name] for name in BY_GB})
        for name in metrics.keys() - self.defined - {ROUND_AXIS, GB_AXIS}:
            if not name.startswith("by_gb/"):
                self.run.define_metric(name, step_metric=ROUND_AXIS)
            self.defined.add(name)
        self.run.log(metrics, step=row["round"])

    def close(self, completed: bool) -> None:
        if self.run is None:
            return
        if completed and self.table.rows:
            self.run.summary.update(final_numbers(self.table.rows))
        self.run.finish()


def where_runs_are(results_dir: str | Location, sweep: str, access: WandbAccess) -> list[str]:
    """The sweep summary's W&B lines: where the runs are and, when offline, how to upload them."""
    directory = local_dir(results_dir, sweep) / WANDB
    on_this_node = Location(results_dir).local_path is not None
    where = f"{directory}" if on_this_node else f"{directory} on each node that ran a trial"
    lines = [f"W&B      {where}   (group {sweep}, {access.mode})"]
    if access.mode == "offline":
        lines.append(f"         upload offline runs with:  wandb sync {directory}/offline-run-*"
                     + ("" if on_this_node else "   (on each of those nodes)"))
    return lines
