"""The sample-weighted sum of client updates, the one reduction every algorithm's server step reads.

Sums are kept in float64 on the CPU: the products weight·update are exact there, so partial sums from
different workers combine to the same mean. The driver adds partials in the order of their first client,
which makes a round's result independent of how clients are spread over workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

Update = dict[str, dict[str, Tensor]]


@dataclass
class WeightedSum:
    first_client: int
    weight: float = 0.0
    loss: float = 0.0  # Σ weight · mean training loss
    sums: Update = field(default_factory=dict)

    def add(self, weight: float, update: Update, loss: float) -> None:
        self.weight += weight
        self.loss += weight * loss
        for kind, tensors in update.items():
            target = self.sums.setdefault(kind, {})
            for name, t in tensors.items():
                term = t.detach().to("cpu", torch.float64) * weight
                target[name] = target[name] + term if name in target else term

    def merge(self, other: "WeightedSum") -> None:
        self.weight += other.weight
        self.loss += other.loss
        self.first_client = min(self.first_client, other.first_client)
        for kind, tensors in other.sums.items():
            target = self.sums.setdefault(kind, {})
            for name, t in tensors.items():
                target[name] = target[name] + t if name in target else t

    def mean(self) -> Update:
        return {kind: {n: (t / self.weight).float() for n, t in tensors.items()} for kind, tensors in self.sums.items()}

    @property
    def mean_loss(self) -> float:
        return self.loss / self.weight


def combine(partials: list[WeightedSum]) -> WeightedSum:
    """Add partial sums in a fixed order (by first client) so the result does not depend on the workers."""
    ordered = sorted(partials, key=lambda p: p.first_client)
    total = WeightedSum(first_client=ordered[0].first_client)
    for p in ordered:
        total.merge(p)
    return total
