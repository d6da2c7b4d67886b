"""The sample-weighted sum of client updates, the one reduction every algorithm's server step reads.

Each worker pre-reduces its clients into one partial sum, so the driver receives one message per
worker, not one model per client. For the result not to depend on how clients are spread over
workers, sums are compensated: products weight·update are exact in float64, and each addition keeps
its rounding error (Knuth's TwoSum) in a second float64 tensor, so a sum carries ~106 bits and the
float32 mean is the same whatever the grouping or order of additions.

This reduction sits on every client's path, so it is built for speed: sums live in flat float64
buffers, and an update is added block by block, each block (copied in from the update's tensors)
small enough that the TwoSum's element-wise passes stay in the CPU's cache; on a GPU the whole buffer
is one block. Nothing is allocated per client after the first.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from runner.engine.wire import read_only_view, to_wire

Update = dict[str, dict[str, Tensor]]
Layout = tuple[tuple[str, str, torch.Size], ...]  # (kind, name, shape) of each tensor, in buffer order
CPU_BLOCK = 1 << 17  # float64 elements per block (1 MiB): the four blocks in play stay in the L2/L3 caches


@dataclass
class WeightedSum:
    """Σ weight·update over some clients, as hi + lo in float64, plus the clients' weighted losses."""

    weight: float = 0.0
    losses: list[float] = field(default_factory=list)  # weight · mean training loss, one per client
    layout: Layout = ()
    hi: Tensor | None = None
    lo: Tensor | None = None
    _scratch: tuple[Tensor, ...] = field(default=(), repr=False)  # a spare hi and two blocks (never shipped)

    def add(self, weight: float, update: Update, loss: float) -> None:
        self.weight += weight
        self.losses.append(weight * loss)
        flats = [t.detach().reshape(-1) for tensors in update.values() for t in tensors.values()]
        if self.hi is None:
            self.layout = tuple((kind, name, t.shape) for kind, tensors in update.items()
                                for name, t in tensors.items())
            device = flats[0].device if flats else torch.device("cpu")
            self.hi = torch.empty(sum(t.numel() for t in flats), dtype=torch.float64, device=device)
            start = 0
            for t in flats:
                self.hi[start:start + t.numel()].copy_(t)
                start += t.numel()
            self.hi.mul_(weight)  # exact: a float32 times an integer-valued weight fits in 53 bits
            self.lo = torch.zeros_like(self.hi)
        else:
            self._accumulate(flats, weight)

    def merge(self, other: WeightedSum) -> None:
        """Add another partial sum (its hi is added with TwoSum, its lo plainly: lo carries no further error)."""
        self.weight += other.weight
        self.losses.extend(other.losses)
        if other.hi is None or other.lo is None:  # a sum of no clients
            return
        if self.hi is None or self.lo is None:
            self.layout, self.hi, self.lo = other.layout, other.hi.clone(), other.lo.clone()
        else:
            self._accumulate([other.hi], 1.0)
            self.lo.add_(other.lo)

    def mean(self) -> Update:
        assert self.hi is not None and self.lo is not None, "the mean of no clients"
        flat = ((self.hi + self.lo) / self.weight).float()
        out: Update = {}
        start = 0
        for kind, name, shape in self.layout:
            size = math.prod(shape)
            out.setdefault(kind, {})[name] = flat[start:start + size].view(shape)
            start += size
        return out

    @property
    def mean_loss(self) -> float:
        return math.fsum(self.losses) / self.weight  # exactly rounded, so independent of order

    # --- the compensated addition ---------------------------------------------------------------
    def _accumulate(self, sources: list[Tensor], weight: float) -> None:
        """hi + lo += weight · (the concatenated flat ``sources``), exactly up to lo's own rounding."""
        assert self.hi is not None and self.lo is not None
        size = self.hi.numel()
        block = CPU_BLOCK if self.hi.device.type == "cpu" else size
        if not self._scratch:
            self._scratch = (torch.empty_like(self.hi), *(torch.empty(min(block, size), dtype=torch.float64,
                                                                        device=self.hi.device) for _ in range(2)))
        spare, term, virtual = self._scratch
        for start, length, pieces in _blocks(sources, block):
            x, v = term[:length], virtual[:length]
            for piece, offset in pieces:
                x[offset:offset + piece.numel()].copy_(piece)
            if weight != 1.0:
                x.mul_(weight)
            hi, lo, total = (t[start:start + length] for t in (self.hi, self.lo, spare))
            torch.add(hi, x, out=total)
            torch.sub(total, hi, out=v)  # the part of x that made it into total
            x.sub_(v)  # x's rounding error
            torch.sub(total, v, out=v)  # the part of hi that made it into total
            hi.sub_(v)  # hi's rounding error
            lo.add_(hi).add_(x)
        self.hi, self._scratch = spare, (self.hi, term, virtual)

    def __reduce__(self):
        """Ship hi and lo as CPU arrays (see runner/wire.py; the driver may have no GPU), not the scratch."""
        sums = None if self.hi is None else to_wire({"hi": self.hi, "lo": self.lo})
        return _unpack, (self.weight, self.losses, self.layout, sums)


def _unpack(weight: float, losses: list[float], layout: Layout, sums: dict | None) -> WeightedSum:
    """A received partial sum. Its hi and lo are views of object-store memory, so it is read-only: merge
    it into another sum (which copies or reads it), never add to it."""
    hi, lo = (None, None) if sums is None else (read_only_view(sums["hi"]), read_only_view(sums["lo"]))
    return WeightedSum(weight, losses, layout, hi, lo)


def _blocks(sources: list[Tensor], block: int) -> Iterator[tuple[int, int, list[tuple[Tensor, int]]]]:
    """Consecutive blocks of the concatenation of ``sources``: (start, length, [(piece, offset in block)])."""
    start, pieces, filled = 0, [], 0
    for t in sources:
        position = 0
        while position < t.numel():
            take = min(block - filled, t.numel() - position)
            pieces.append((t[position:position + take], filled))
            position, filled = position + take, filled + take
            if filled == block:
                yield start, filled, pieces
                start, pieces, filled = start + filled, [], 0
    if filled:
        yield start, filled, pieces
