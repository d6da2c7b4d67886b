"""A trial's resume state: one file per trial, replaced atomically, so a crash leaves the last one whole.

It holds everything needed to continue exactly: the round, the global model, the server optimizer's
state, every client's persistent state, the bytes and seconds so far. The trial writes it only after the
round's row is recorded, so a checkpoint never runs ahead of the rows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from runner.config import TrialConfig


def trial_dir(cfg: TrialConfig) -> Path:
    """A trial's own directory under its results: its checkpoint and the config it ran with."""
    return Path(cfg.logging.results_dir).expanduser().absolute() / "trials" / cfg.trial_name


class CheckpointFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any] | None:
        """The last saved state, or None when the trial has none yet."""
        if not self.path.exists():
            return None
        return torch.load(self.path, weights_only=False)

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)
