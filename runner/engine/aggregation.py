"""The sample-weighted sum of client updates, the one reduction every algorithm's server step reads.

Each worker pre-reduces its clients into one partial sum, so the driver receives one message per
worker, not one model per client. For the result not to depend on how clients are spread over
workers, the sum is exact, in fixed point:

- Every value v of a client's update is rounded once to an integer q = round(v·2^40) (units of
  2^-40). A float32 difference of two weights of magnitude ≥ 2^-17, and any float32 of that
  magnitude, is already a multiple of 2^-40, so for the usual values nothing is rounded at all;
  smaller values lose what lies below 2^-40, the same loss whatever the grouping.
- The products n·q (n the client's sample count, an integer below 2^23) have at most 47 significant
  bits and are exact in float64. Integers below 2^53 add exactly in float64, in any order and any
  grouping, so partial sums can be formed and merged anywhere and always hold the same integer.
- The mean is that integer rounded once to float64, times 2^-40 (exact), divided by the total weight
  W (one rounding), rounded to float32: a function of the exact sum alone.

The sum is held in one float64 word per value while a bound on it (kept per block of values:
Σ n·max|q|) stays below 2^53. A block whose bound would pass it is split, exactly, into two words,
Σ n·q = high·2^30 + low, and each client's q is split the same way from then on (q = h·2^30 + l,
|l| ≤ 2^29, both float32 integers); with |v| < 2^20 and W < 2^23 neither word can pass 2^53 (low
≤ 2W·2^29, high ≤ W·(2^30 + 1)). That is the range of the scale: a value with |v| ≥ 2^20 (or
NaN, or infinite) cannot be summed exactly, so it is never summed at all: its position's mean is NaN
(the same for any grouping) and a warning names the tensor. A total weight of 2^23 or more is an
error. Nothing wraps: no integer type is involved, and no word is ever allowed to round.

This reduction sits on every client's path, so it is built for speed: an update is read block by
block into a float32 scratch block that stays in the CPU's cache (the difference of trained and
starting weights is formed right there, see :class:`~runner.algorithms.base.Difference`), scaled,
rounded and checked in one pass, then added to the float64 words in a second: on a CPU by two loops
compiled for the machine, elsewhere (or without a C compiler) by torch ops with the same results
(runner/engine/exact_sum_kernel.py). On a GPU the whole buffer is one block. Nothing is allocated per
client after the first.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from runner.algorithms.base import Difference
from runner.engine.exact_sum_kernel import LIMIT, SCALE, Kernel, extremes, kernel_for
from runner.engine.wire import read_only_view, to_wire

logger = logging.getLogger(__name__)

Update = Mapping[str, Mapping[str, Tensor]]
Layout = tuple[tuple[str, str, torch.Size], ...]  # (kind, name, shape) of each tensor, in buffer order
CPU_BLOCK = 1 << 18  # values per block on a CPU: the float32 scratch blocks (1 MiB each) stay in the L2 cache
SPLIT = 2.0 ** 30  # a split block holds Σ n·q as high·2^30 + low
EXACT = 2.0 ** 53  # float64 holds every integer below this exactly
MAX_WEIGHT = 2.0 ** 23  # total weight (samples) below this: both words of a split block stay exact


@dataclass
class WeightedSum:
    """Σ weight·update over some clients, exactly (integers in units of 2^-40), plus the weighted losses."""

    weight: float = 0.0
    losses: list[float] = field(default_factory=list)  # weight · mean training loss, one per client
    layout: Layout = ()
    low: Tensor | None = None  # float64 integers: the sum, or its low word in split blocks
    high: Tensor | None = None  # float64 integers in units of 2^30·2^-40, for split blocks (allocated on the first)
    invalid: Tensor | None = None  # bool: positions where some client sent a value outside the range
    bounds: list[float] = field(default_factory=list)  # per block: a bound on |low|, or inf once it is split
    # values per block (per entry of ``bounds``): CPU_BLOCK on a CPU, the whole buffer on a GPU; set when the sum
    # is allocated (or taken from the first partial sum merged). Partial sums with other blocks merge all the same.
    block: int = 0
    _scratch: tuple[Tensor, Tensor] | None = field(default=None, repr=False)  # two float32 blocks (never shipped)

    # --- adding clients and partial sums ----------------------------------------------------------
    def add(self, weight: float, update: Update, loss: float) -> None:
        """Add one client's update. Its tensors may be :class:`Difference` s (read here, once)."""
        if weight != int(weight) or weight < 0:
            raise ValueError(f"a client's weight must be its sample count (a whole number), got {weight}")
        if self.weight + weight >= MAX_WEIGHT:
            raise ValueError(f"the exact sum holds a total weight below 2^23 samples, got {self.weight + weight:.0f}")
        self.weight += weight
        self.losses.append(weight * loss)
        pieces = list(_pieces(update))
        if self.low is None:
            self._allocate(tuple((kind, name, a.shape) for kind, name, a, _ in pieces),
                           pieces[0][2].device if pieces else torch.device("cpu"))
        assert self.low is not None
        if self._scratch is None:
            scratch_size = min(self.block, self.low.numel())
            self._scratch = (torch.empty(scratch_size, device=self.low.device),
                             torch.empty(scratch_size, device=self.low.device))
        scratch, spare = self._scratch
        kernel = kernel_for(self.low.device)
        stream = _blocks([(a.reshape(-1), None if b is None else b.reshape(-1)) for _, _, a, b in pieces],
                         self.block)
        for index, (start, length, parts) in enumerate(stream):
            x = scratch[:length]
            peak, outside = kernel.quantize(x, parts)  # q: integers in a float32 block
            if outside:
                peak = self._mask_outside(start, x)
            self._add_block(kernel, index, start, x, spare[:length], weight, peak)

    def merge(self, other: WeightedSum) -> None:
        """Add another partial sum (which is only read: it may live in the object store)."""
        if self.weight + other.weight >= MAX_WEIGHT:
            raise ValueError(f"the exact sum holds a total weight below 2^23 samples, got "
                             f"{self.weight + other.weight:.0f}")
        self.weight += other.weight
        self.losses.extend(other.losses)
        if other.low is None:  # a sum of no clients
            return
        if self.low is None:  # the first: a copy of its words (they may be read-only object-store memory)
            self.layout, self.bounds, self.block = other.layout, list(other.bounds), other.block
            self.low = other.low.clone()
            self.high = None if other.high is None else other.high.clone()
            self.invalid = None if other.invalid is None else other.invalid.clone()
            return
        if other.invalid is not None:
            self._invalid().logical_or_(other.invalid)
        # a GPU worker's partial sum has one block, a CPU worker's many: walk the pieces both agree on
        for index, theirs, piece in _pieces_of_blocks(self.low.numel(), self.block, other.block):
            bound = other.bounds[theirs]
            if math.isinf(bound) or self.bounds[index] + bound >= EXACT:
                self._split(index)
                if math.isinf(bound):
                    assert other.high is not None
                    high, low = other.high[piece], other.low[piece]
                else:
                    high, low = _split_words(other.low[piece])
                assert self.high is not None
                self.high[piece].add_(high)
                self.low[piece].add_(low)
            else:
                self.low[piece].add_(other.low[piece])
                self.bounds[index] += bound  # per piece: a sum of bounds still bounds the block

    # --- the result -------------------------------------------------------------------------------
    def mean(self) -> dict[str, dict[str, Tensor]]:
        assert self.low is not None, "the mean of no clients"
        total = self.low if self.high is None else torch.add(self.low, self.high, alpha=SPLIT)  # one rounding
        # (total·2^-40)/W in float64, then float32: as one division by W·2^40 (exact: W < 2^23), written as float32
        flat = torch.empty(total.shape, dtype=torch.float32, device=total.device)
        torch.div(total, self.weight * SCALE, out=flat)
        if self.invalid is not None and bool(self.invalid.any()):
            flat[self.invalid] = math.nan
        out: dict[str, dict[str, Tensor]] = {}
        start = 0
        for kind, name, shape in self.layout:
            size = math.prod(shape)
            out.setdefault(kind, {})[name] = flat[start:start + size].view(shape)
            if self.invalid is not None and bool(self.invalid[start:start + size].any()):
                logger.warning("%s %s: a client sent a value outside the exact sum's range (|v| >= 2^20, NaN or "
                               "infinite); its mean is NaN there", kind, name)
            start += size
        return out

    @property
    def mean_loss(self) -> float:
        return math.fsum(self.losses) / self.weight  # exactly rounded, so independent of order

    # --- the exact addition ---------------------------------------------------------------------
    def _mask_outside(self, start: int, x: Tensor) -> float:
        """Zero the values of block ``x`` outside the range and mark their positions invalid; returns max |q|."""
        outside = ~(x.abs() < LIMIT)  # also NaN
        self._invalid()[start:start + x.numel()].logical_or_(outside)
        x.masked_fill_(outside, 0.0)
        smallest, largest = extremes(x)
        return max(largest, -smallest)

    def _add_block(self, kernel: Kernel, index: int, start: int, x: Tensor, spare: Tensor, weight: float,
                   peak: float) -> None:
        """Add weight·x at flat position ``start`` (x: integers q, |q| ≤ peak, in a float32 block, overwritten)."""
        assert self.low is not None
        low = self.low[start:start + x.numel()]
        size = weight * peak
        if self.bounds[index] + size < EXACT:  # the one word stays exact for this block
            kernel.add(low, x, weight)  # n·q is exact in float64, and so is the sum
            self.bounds[index] += size
            return
        self._split(index)
        assert self.high is not None
        h = torch.mul(x, 1 / SPLIT, out=spare).round_()  # q = h·2^30 + l, both exact in float32
        x.sub_(h, alpha=SPLIT)
        self.high[start:start + x.numel()].add_(h, alpha=weight)
        low.add_(x, alpha=weight)

    def _split(self, index: int) -> None:
        """Hold block ``index`` in two words from now on: Σ n·q = high·2^30 + low (an exact rewrite)."""
        if math.isinf(self.bounds[index]):
            return
        assert self.low is not None
        if self.high is None:
            self.high = torch.zeros_like(self.low)
        block = slice(index * self.block, min((index + 1) * self.block, self.low.numel()))
        high, low = _split_words(self.low[block])
        self.high[block].copy_(high)
        self.low[block].copy_(low)
        self.bounds[index] = math.inf

    def _allocate(self, layout: Layout, device: torch.device) -> None:
        self.layout = layout
        numel = sum(math.prod(shape) for _, _, shape in layout)
        self.low = torch.zeros(numel, dtype=torch.float64, device=device)
        self.block = self.block or (CPU_BLOCK if device.type == "cpu" else max(1, numel))
        self.bounds = [0.0] * math.ceil(numel / self.block) if numel else []

    def _invalid(self) -> Tensor:
        assert self.low is not None
        if self.invalid is None:
            self.invalid = torch.zeros(self.low.shape, dtype=torch.bool, device=self.low.device)
        return self.invalid

    def __reduce__(self):
        """Ship the words as CPU arrays (see runner/engine/wire.py; the driver may have no GPU), not the scratch."""
        words = {name: t for name, t in (("low", self.low), ("high", self.high), ("invalid", self.invalid))
                 if t is not None}
        return _unpack, (self.weight, self.losses, self.layout, self.bounds, self.block, to_wire(words))


def _unpack(weight: float, losses: list[float], layout: Layout, bounds: list[float], block: int,
            words: dict) -> WeightedSum:
    """A received partial sum. Its tensors are views of object-store memory, so it is read-only: merge
    it into another sum (which reads it), never add to it."""
    views = {name: read_only_view(array) for name, array in words.items()}
    return WeightedSum(weight, losses, layout, views.get("low"), views.get("high"), views.get("invalid"), bounds,
                       block)


def _pieces_of_blocks(numel: int, mine: int, theirs: int) -> Iterator[tuple[int, int, slice]]:
    """(my block, their block, positions) for the pieces of [0, numel) that lie in one block of each size."""
    start = 0
    while start < numel:
        index, other = start // mine, start // theirs
        end = min((index + 1) * mine, (other + 1) * theirs, numel)
        yield index, other, slice(start, end)
        start = end


def _split_words(total: Tensor) -> tuple[Tensor, Tensor]:
    """(high, low) with total = high·2^30 + low and |low| ≤ 2^29, for float64 integers below 2^53 (exact)."""
    high = torch.mul(total, 1 / SPLIT).round_()
    return high, torch.sub(total, high, alpha=SPLIT)


def _pieces(update: Update) -> Iterator[tuple[str, str, Tensor, Tensor | None]]:
    """(kind, name, a, b) per tensor: its value is a − b for a :class:`Difference`, else a (b None)."""
    for kind, tensors in update.items():
        if isinstance(tensors, Difference):
            for name, a, b in tensors.pairs():
                yield kind, name, a, b
        else:
            for name, t in tensors.items():
                yield kind, name, t.detach(), None


def _blocks(sources: list[tuple[Tensor, Tensor | None]],
            block: int) -> Iterator[tuple[int, int, list[tuple[int, Tensor, Tensor | None]]]]:
    """Consecutive blocks of the concatenated flat ``sources``: (start, length, [(offset in block, a, b)])."""
    start, parts, filled = 0, [], 0
    for a, b in sources:
        position = 0
        while position < a.numel():
            take = min(block - filled, a.numel() - position)
            end = position + take
            parts.append((filled, a[position:end], None if b is None else b[position:end]))
            position, filled = end, filled + take
            if filled == block:
                yield start, filled, parts
                start, parts, filled = start + filled, [], 0
    if filled:
        yield start, filled, parts
