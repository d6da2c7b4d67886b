"""The smallest real sweep file: two one-worker FC-2 trials (seeds 0 and 1) of two rounds on synthetic data.

Tests that run a whole sweep through the command line (resume, the console view) write it with
:func:`write_tiny_sweep`, so a change to what "tiny" means is made once. The console view and the resume test
read one run of it (tests/conftest.py: ``finished_tiny_sweep``), made through :func:`spy_on_tuners`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_SWEEP = """
name: {name}
description: two tiny trials
base:
  data: {{dataset: synthetic, num_clients: 4, clients_per_round: 2}}
  model: {{arch: fc2, parameterization: fedpara, gamma: 0.5}}
  train: {{rounds: 2, local_epochs: 1, batch_size: 64, lr: 0.05}}
  resources: {{num_workers: 1, cpus_per_worker: 0.25, gpus_per_worker: 0, driver_cpus: 0.25}}
  logging: {{checkpoint_every: 1, wandb: disabled}}
grid:
  seed: [0, 1]
"""


def write_tiny_sweep(path: Path, name: str) -> Path:
    path.write_text(TINY_SWEEP.format(name=name))
    return path


def spy_on_tuners(monkeypatch: Any) -> list[tuple[str, dict]]:
    """The real Tuner on the session's Ray (``ray.init`` does nothing), recording how each run builds a new
    Tuner (``("new", its keyword arguments)``) or restores one (``("restore", {"path": ...})``)."""
    import ray
    from ray import tune

    calls: list[tuple[str, dict]] = []
    real_restore = tune.Tuner.restore

    class Spy(tune.Tuner):
        def __init__(self, *args, **kwargs):
            if "tune_config" in kwargs:
                calls.append(("new", kwargs))
            super().__init__(*args, **kwargs)

        @classmethod
        def restore(cls, path, **kwargs):
            calls.append(("restore", {"path": path}))
            return real_restore(path, **kwargs)

    monkeypatch.setattr(ray, "init", lambda *args, **kwargs: None)  # the session's Ray is already up
    monkeypatch.setattr(tune, "Tuner", Spy)
    return calls
