"""FedPAQ (Reisizadeh et al., 2020): clients upload their delta quantised to s levels.

Quantisation is QSGD's unbiased stochastic rounding, per tensor: q = ‖v‖·sign(v)·ℓ/s where ℓ rounds
s·|v|/‖v‖ up or down at random with the right odds. The server averages the dequantised values; the bytes
counted are those of the packed quantised form (see runner.cost.quantised_bytes).
"""

from __future__ import annotations

import torch
from torch import Tensor

from runner.algorithms.base import Algorithm
from runner.cost import quantised_bytes


def quantise(v: Tensor, levels: int, generator: torch.Generator) -> Tensor:
    """Unbiased stochastic quantisation of one tensor to ``levels`` levels of its norm."""
    norm = v.norm()
    if norm == 0:
        return torch.zeros_like(v)
    scaled = v.abs() / norm * levels
    lower = scaled.floor()
    up = torch.rand(v.shape, generator=generator, device=v.device) < (scaled - lower)
    return norm * v.sign() * (lower + up) / levels


class FedPAQ(Algorithm):
    name = "fedpaq"

    def train_client(self, job, payload, client_state):
        update, loss = super().train_client(job, payload, client_state)
        levels = self.cfg.levels
        update["delta"] = {n: quantise(d, levels, job.generator) for n, d in update["delta"].items()}
        return update, loss

    def bytes_up(self, global_numels):
        return quantised_bytes(global_numels, self.cfg.levels)
