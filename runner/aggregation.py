"""The sample-weighted sum of client updates, the one reduction every algorithm's server step reads.

Each worker pre-reduces its clients into one partial sum, so the driver receives one message per
worker, not one model per client. For the result not to depend on how clients are spread over
workers, sums are compensated: products weight·update are exact in float64, and each addition keeps
its rounding error (Knuth's TwoSum) in a second float64 tensor, so a sum carries ~106 bits and the
float32 mean is the same whatever the grouping or order of additions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

Update = dict[str, dict[str, Tensor]]


def _two_sum(hi: Tensor, lo: Tensor, term: Tensor) -> Tensor:
    """hi ← hi + term in place, adding the exact rounding error to lo; returns hi."""
    total = hi + term
    back = total - hi
    lo += (hi - (total - back)) + (term - back)
    hi.copy_(total)
    return hi


@dataclass
class WeightedSum:
    first_client: int
    weight: float = 0.0
    losses: list[float] = field(default_factory=list)  # weight · mean training loss, one per client
    hi: Update = field(default_factory=dict)
    lo: Update = field(default_factory=dict)

    def _accumulate(self, kind: str, name: str, hi: Tensor, lo: Tensor | None) -> None:
        target_hi, target_lo = self.hi.setdefault(kind, {}), self.lo.setdefault(kind, {})
        if name not in target_hi:
            target_hi[name] = hi.clone()
            target_lo[name] = lo.clone() if lo is not None else torch.zeros_like(hi)
            return
        _two_sum(target_hi[name], target_lo[name], hi)
        if lo is not None:
            target_lo[name] += lo

    def add(self, weight: float, update: Update, loss: float) -> None:
        self.weight += weight
        self.losses.append(weight * loss)
        for kind, tensors in update.items():
            for name, t in tensors.items():
                self._accumulate(kind, name, t.detach().to("cpu", torch.float64) * weight, None)

    def merge(self, other: "WeightedSum") -> None:
        self.weight += other.weight
        self.losses.extend(other.losses)
        self.first_client = min(self.first_client, other.first_client)
        for kind, tensors in other.hi.items():
            for name, t in tensors.items():
                self._accumulate(kind, name, t, other.lo[kind][name])

    def mean(self) -> Update:
        return {kind: {n: ((t + self.lo[kind][n]) / self.weight).float() for n, t in tensors.items()}
                for kind, tensors in self.hi.items()}

    @property
    def mean_loss(self) -> float:
        return math.fsum(self.losses) / self.weight  # exactly rounded, so independent of order


def combine(partials: list[WeightedSum]) -> WeightedSum:
    """Add the workers' partial sums (in a fixed order, though the result does not depend on it)."""
    ordered = sorted(partials, key=lambda p: p.first_client)
    total = WeightedSum(first_client=ordered[0].first_client)
    for p in ordered:
        total.merge(p)
    return total
