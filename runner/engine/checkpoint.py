"""A trial's resume state: one file per trial, replaced atomically, so a crash leaves the last one whole.

It holds everything needed to continue exactly: the round, the global model, the server optimizer's
state, every client's persistent state, the bytes and seconds so far. The trial writes it only after the
round's row is recorded, so a checkpoint never runs ahead of the rows. It lives under the results
(runner/engine/storage.py: a local or shared path, or cloud storage that every node opens for itself), so a
trial resumed on another node finds it.
"""

from __future__ import annotations

import io
import os
from typing import Any

import torch

from runner.config import TrialConfig
from runner.engine.storage import Location


def trial_dir(cfg: TrialConfig) -> Location:
    """A trial's own directory under its results: its checkpoint, the config it ran with, its W&B run id."""
    return Location(cfg.logging.results_dir) / "trials" / cfg.trial_name


class CheckpointFile:
    def __init__(self, path: Location | str | os.PathLike[str]) -> None:
        self.path = Location(path)

    def load(self) -> dict[str, Any] | None:
        """The last saved state, or None when the trial has none yet."""
        if not self.path.exists():
            return None
        return torch.load(io.BytesIO(self.path.read_bytes()), weights_only=False)

    def save(self, state: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.path.write_bytes(buffer.getvalue())
