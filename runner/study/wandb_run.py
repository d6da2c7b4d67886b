"""The trial's W&B run, opened through Ray's W&B integration (``setup_wandb``).

One run per trial: id derived from the trial name (a resumed trial continues its run), name = trial
name, group = sweep name, config = the flat trial config plus the code version. Whether it is online,
offline or disabled was decided where the sweep started (runner/study/wandb_access.py). Runs live on the
local disk of the node that ran the trial (W&B needs a local directory): under ``<results>/wandb`` for a
local ``--results``, else under ``~/fedpara-wandb/<sweep>``; offline runs can be uploaded later with
``wandb sync``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.config import TrialConfig
from runner.engine.storage import Location
from runner.engine.trial import RoundSink
from runner.study.results import RoundsTable
from runner.study.wandb_access import DEFAULT_HOST, WandbAccess

LOCAL_ROOT = "~/fedpara-wandb"  # where runs go when the results are not on this machine's disk


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
    (directory / "wandb").mkdir(parents=True, exist_ok=True)
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
    """The trial's W&B run as a sink: every round's metrics at step = round, the final numbers in the summary;
    ``labels`` (the code version) join the run's config."""

    def __init__(self, cfg: TrialConfig, access: WandbAccess, table: RoundsTable,
                 labels: Mapping[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.access = access.for_trial(cfg.logging.wandb)
        self.table = table
        self.labels = dict(labels or {})
        self.run: Any = None
        self.constants: set[str] = set()
        self.last: Mapping[str, Any] = {}

    def open(self, resumed_after: int, constants: Mapping[str, Any]) -> None:
        self.constants = set(constants)
        run_id = hashlib.sha1(self.cfg.trial_name.encode()).hexdigest()[:16]
        self.run = open_run(self.cfg, self.access, run_id=run_id, resume="allow",
                            config={**self.cfg.flat(), **self.labels})

    def write(self, row: Mapping[str, Any]) -> None:
        self.last = row
        if self.run is not None:
            self.run.log({k: v for k, v in row.items() if k not in self.constants and k not in self.labels
                          and k != "round"}, step=row["round"])

    def close(self, completed: bool) -> None:
        if self.run is None:
            return
        if completed and self.last:
            self.run.summary.update({"final_test_accuracy": self.last["test_accuracy"],
                                     "param_ratio": self.last["param_ratio"],
                                     "cumulative_bytes": self.last["cumulative_bytes"]})
        self.run.finish()


def where_runs_are(results_dir: str | Location, sweep: str, access: WandbAccess) -> list[str]:
    """The sweep summary's W&B lines: where the runs are and, when offline, how to upload them."""
    directory = local_dir(results_dir, sweep) / "wandb"
    on_this_node = Location(results_dir).local_path is not None
    where = f"{directory}" if on_this_node else f"{directory} on each node that ran a trial"
    lines = [f"W&B      {where}   (group {sweep}, {access.mode})"]
    if access.mode == "offline":
        lines.append(f"         upload offline runs with:  wandb sync {directory}/offline-run-*"
                     + ("" if on_this_node else "   (on each of those nodes)"))
    return lines
