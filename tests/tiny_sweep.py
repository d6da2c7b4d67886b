"""The smallest real sweep file: two one-worker FC-2 trials (seeds 0 and 1) of two rounds on synthetic data.

Tests that run a whole sweep through the command line (resume, the console view) write it with
:func:`write_tiny_sweep`, so a change to what "tiny" means is made once.
"""

from __future__ import annotations

from pathlib import Path

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
