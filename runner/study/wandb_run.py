"""The trial's W&B run, opened through Ray's W&B integration (``setup_wandb``).

One run per trial: id derived from the trial name (a resumed trial continues its run), name = trial
name, group = sweep name, config = the flat trial config. With ``logging.wandb: auto`` the run is
online when an API key is configured and offline otherwise. Runs live on the local disk of the node that
ran the trial (W&B needs a local directory): under ``<results>/wandb`` for a local ``--results``, else
under ``~/fedpara-wandb/<sweep>``; offline runs can be uploaded later with ``wandb sync``.
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

LOCAL_ROOT = "~/fedpara-wandb"  # where runs go when the results are not on this machine's disk


def local_dir(results_dir: str | Location, sweep: str) -> Path:
    """The directory W&B writes under (runs land in ``<it>/wandb/``) on the node that runs a trial."""
    local = Location(results_dir).local_path
    return local if local is not None else Path(LOCAL_ROOT).expanduser() / (sweep or "adhoc")


def resolve_mode(requested: str) -> str:
    if requested != "auto":
        return requested
    if os.environ.get("WANDB_MODE") in ("online", "offline", "disabled"):
        return os.environ["WANDB_MODE"]
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def open_run(cfg: TrialConfig, results_dir: Path) -> Any | None:
    """Start (or resume) the trial's W&B run; None when W&B is disabled."""
    mode = resolve_mode(cfg.logging.wandb)
    if mode == "disabled":
        return None
    os.environ.setdefault("WANDB_SILENT", "true")
    from ray.air.integrations.wandb import setup_wandb

    directory = results_dir / "wandb"
    directory.mkdir(parents=True, exist_ok=True)
    name = cfg.trial_name
    # Ray's integration skips its API-key check only when WANDB_MODE is set; set it for this call alone,
    # so that the next trial in this process resolves "auto" afresh
    previous = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = mode
    try:
        return setup_wandb(
            config=cfg.flat(), trial_id=hashlib.sha1(name.encode()).hexdigest()[:16], trial_name=name,
            group=cfg.sweep or "adhoc", project=cfg.logging.wandb_project, dir=str(results_dir), mode=mode,
            resume="allow", reinit="create_new")
    finally:
        if previous is None:
            os.environ.pop("WANDB_MODE", None)
        else:
            os.environ["WANDB_MODE"] = previous


class WandbRun(RoundSink):
    """The trial's W&B run as a sink: every round's metrics at step = round, the final numbers in the summary."""

    def __init__(self, cfg: TrialConfig) -> None:
        self.cfg = cfg
        self.run: Any = None
        self.constants: set[str] = set()
        self.last: Mapping[str, Any] = {}

    def open(self, resumed_after: int, constants: Mapping[str, Any]) -> None:
        self.constants = set(constants)
        self.run = open_run(self.cfg, local_dir(self.cfg.logging.results_dir, self.cfg.sweep))

    def write(self, row: Mapping[str, Any]) -> None:
        self.last = row
        if self.run is not None:
            self.run.log({k: v for k, v in row.items() if k not in self.constants and k != "round"}, step=row["round"])

    def close(self, completed: bool) -> None:
        if self.run is None:
            return
        if completed and self.last:
            self.run.summary.update({"final_test_accuracy": self.last["test_accuracy"],
                                     "param_ratio": self.last["param_ratio"],
                                     "cumulative_bytes": self.last["cumulative_bytes"]})
        self.run.finish()
