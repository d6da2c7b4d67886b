"""The sample-weighted sum of client updates, the one reduction every algorithm's server step reads.

Each worker pre-reduces its clients into one partial sum, so the driver receives one message per
worker, not one model per client. For the result not to depend on how clients are spread over
workers, sums are compensated: products weight·update are exact in float64, and each addition keeps
its rounding error (Knuth's TwoSum) in a second float64 tensor, so a sum carries ~106 bits and the
float32 mean is the same whatever the grouping or order of additions. The additions run in place on
preallocated buffers: this reduction sits on every client's path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

Update = dict[str, dict[str, Tensor]]


@dataclass
class _Compensated:
    """One tensor's running sum: hi + lo, with a scratch buffer so additions allocate nothing."""

    hi: Tensor
    lo: Tensor
    spare: Tensor

    @classmethod
    def start(cls, first: Tensor, lo: Tensor | None = None) -> "_Compensated":
        return cls(first, lo if lo is not None else torch.zeros_like(first), torch.empty_like(first))

    def add(self, term: Tensor) -> None:
        """hi + lo += term exactly (TwoSum); ``term`` is used as scratch and overwritten."""
        total = torch.add(self.hi, term, out=self.spare)
        virtual = torch.sub(total, self.hi)  # the part of term that made it into total
        term.sub_(virtual)  # term's rounding error
        torch.sub(total, virtual, out=virtual)  # the part of hi that made it into total
        torch.sub(self.hi, virtual, out=virtual)  # hi's rounding error
        self.lo.add_(virtual).add_(term)
        self.hi, self.spare = total, self.hi

    def value(self) -> Tensor:
        return self.hi + self.lo


@dataclass
class WeightedSum:
    first_client: int
    weight: float = 0.0
    losses: list[float] = field(default_factory=list)  # weight · mean training loss, one per client
    sums: dict[tuple[str, str], _Compensated] = field(default_factory=dict)

    def add(self, weight: float, update: Update, loss: float) -> None:
        self.weight += weight
        self.losses.append(weight * loss)
        for kind, tensors in update.items():
            for name, t in tensors.items():
                term = t.detach().to("cpu", torch.float64).mul_(weight)
                if (kind, name) in self.sums:
                    self.sums[kind, name].add(term)
                else:
                    self.sums[kind, name] = _Compensated.start(term)

    def merge(self, other: "WeightedSum") -> None:
        self.weight += other.weight
        self.losses.extend(other.losses)
        self.first_client = min(self.first_client, other.first_client)
        for key, part in other.sums.items():
            if key in self.sums:
                self.sums[key].add(part.hi.clone())
                self.sums[key].lo.add_(part.lo)
            else:
                self.sums[key] = _Compensated.start(part.hi.clone(), part.lo.clone())

    def mean(self) -> Update:
        out: Update = {}
        for (kind, name), part in self.sums.items():
            out.setdefault(kind, {})[name] = (part.value() / self.weight).float()
        return out

    @property
    def mean_loss(self) -> float:
        return math.fsum(self.losses) / self.weight  # exactly rounded, so independent of order

    def __reduce__(self):
        """Ship only hi and lo (the scratch buffers stay behind)."""
        packed = {key: (p.hi, p.lo) for key, p in self.sums.items()}
        return _unpack, (self.first_client, self.weight, self.losses, packed)


def _unpack(first_client: int, weight: float, losses: list[float], packed: dict) -> WeightedSum:
    return WeightedSum(first_client, weight, losses,
                       {key: _Compensated(hi, lo, torch.empty_like(hi)) for key, (hi, lo) in packed.items()})


def combine(partials: list[WeightedSum]) -> WeightedSum:
    """Add the workers' partial sums (in a fixed order, though the result does not depend on it)."""
    ordered = sorted(partials, key=lambda p: p.first_client)
    total = WeightedSum(first_client=ordered[0].first_client)
    for p in ordered:
        total.merge(p)
    return total
