"""Whole-model budgets: the knob that builds a model closest to a target share of the original's parameters.

The paper states its models' sizes as whole-model shares (VGG16_FedPara at 10.1 % of VGG16, LSTM_FedPara at
19 %, LSTM_low at 16 %; docs/method.md, "Budgets"). The per-layer knobs do not give those shares directly:
layers that stay dense (norms, biases, the classifier) and the full-rank floor r_min weigh in. So a target
share is solved here, on the model's own layer shapes and integer ranks:

- FedPara and pFedPara: the paper's γ, the same for every layer (``models.rank.rank_from_gamma``);
- low-rank: one per-layer ratio ρ for every layer, each solved on the low-rank layer's own count
  (``models.rank.lowrank_rank_from_ratio``), so no FedPara floor keeps it from small budgets.

The whole-model count is a step function of the knob, non-decreasing; the answer is the reachable count
nearest the target (the smaller one on a tie), and the knob is reported as the roundest value inside the
interval that reaches it (γ = 0.1 rather than 0.0987...), so it can be read and checked against the paper.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from models import rank as rank_rule
from models.factorized import FactorizedConv2d, FactorizedLayer, FactorizedLinear

Shape = tuple[int, int, int | None]  # (out, in, kernel size or None for a linear layer)


@dataclass(frozen=True)
class Solved:
    """A whole-model target solved into a per-layer knob: ``gamma`` or ``ratio`` (the other is None)."""

    gamma: float | None
    ratio: float | None
    params: int  # the built model's parameters
    original: int  # the original model's

    @property
    def param_ratio(self) -> float:
        return self.params / self.original


def layer_shapes(model: nn.Module) -> tuple[Shape, ...]:
    """The (out, in, kernel) of every factorized layer, in module order."""
    shapes: list[Shape] = []
    for module in model.modules():
        if isinstance(module, FactorizedLinear):
            shapes.append((module.out_features, module.in_features, None))
        elif isinstance(module, FactorizedConv2d):
            shapes.append((module.out_channels, module.in_channels, module.kernel_size[0]))
    return tuple(shapes)


def factor_count(model: nn.Module) -> int:
    """Parameters in factorized layers' factors (their biases excluded: those count as dense)."""
    return sum(p.numel() for module in model.modules() if isinstance(module, FactorizedLayer)
               for name, p in module.named_parameters(recurse=False) if name != "bias")


def solve(kind: str, shapes: tuple[Shape, ...], dense: int, original: int, target: float) -> Solved:
    """The knob whose model (``dense`` parameters plus its layers' factors) is nearest ``target × original``."""
    if not 0.0 < target <= 1.0:
        raise ValueError(f"param_ratio must be in (0, 1], got {target}")
    if kind == "lowrank":
        breaks = sorted({rank_rule.lowrank_params(*shape, r) / rank_rule.original_params(*shape)
                         for shape in shapes
                         for r in range(1, rank_rule.lowrank_rank_for_budget(rank_rule.original_params(*shape),
                                                                               *shape) + 1)} | {1.0})
        breaks = [b for b in breaks if b <= 1.0]

        def count(knob: float) -> int:
            return dense + sum(rank_rule.lowrank_params(*s, rank_rule.lowrank_rank_from_ratio(knob, *s))
                               for s in shapes)
        knobs = _interval_points([0.0, *breaks])
        lows = [0.0, *breaks]
    else:
        breaks = sorted({(k - low) / (high - low) for shape in shapes
                         for low, high in [(rank_rule.r_min(*shape[:2]), rank_rule.r_max(*shape))] if high > low
                         for k in range(low, high + 1)} | {0.0, 1.0})

        def count(knob: float) -> int:
            return dense + sum(rank_rule.fedpara_params(*s, rank_rule.rank_from_gamma(knob, *s)) for s in shapes)
        knobs = [0.0, *_interval_points(breaks)]
        lows = [0.0, *breaks]
    index = _nearest(knobs, count, target * original)
    value = _readable(knobs[index], lows, count)
    params = count(value)
    return Solved(None, value, params, original) if kind == "lowrank" else Solved(value, None, params, original)


@lru_cache(maxsize=256)
def solve_for(arch: str, kind: str, num_classes: int, input_shape: tuple[int, ...], target: float) -> Solved:
    """:func:`solve` for an architecture: its shapes read off a shape-only (meta) build, cached per model."""
    from models.factory import build_model  # the factory imports this module

    with torch.device("meta"):
        model = build_model(arch, kind, num_classes=num_classes, input_shape=input_shape, gamma=0.0)
        original = build_model(arch, "original", num_classes=num_classes, input_shape=input_shape)
    dense = sum(p.numel() for p in model.parameters()) - factor_count(model)
    return solve(kind, layer_shapes(model), dense, sum(p.numel() for p in original.parameters()), target)


def _interval_points(breaks: list[float]) -> list[float]:
    """A knob strictly inside each interval (b_i, b_{i+1}]: its midpoint (safe from float error at the ends)."""
    return [(lo + hi) / 2 for lo, hi in itertools.pairwise(breaks) if hi > lo]


def _nearest(knobs: list[float], count: Callable[[float], int], goal: float) -> int:
    """Index of the knob whose count is nearest ``goal`` (counts are non-decreasing in the knob)."""
    lo, hi = 0, len(knobs)
    while lo < hi:  # binary search: the first knob whose count reaches the goal
        mid = (lo + hi) // 2
        if count(knobs[mid]) < goal:
            lo = mid + 1
        else:
            hi = mid
    if lo == len(knobs):
        return lo - 1
    if lo > 0 and goal - count(knobs[lo - 1]) <= count(knobs[lo]) - goal:
        return lo - 1
    return lo


def _readable(knob: float, lows: list[float], count: Callable[[float], int]) -> float:
    """The value with the fewest decimals that builds the same model as ``knob`` (nearest to it on a tie)."""
    if knob == 0.0:
        return 0.0
    i = bisect.bisect_left(lows, knob)
    lo, hi = lows[i - 1], lows[i] if i < len(lows) else 1.0
    same = count(knob)
    for decimals in range(1, 10):
        step = 10.0 ** -decimals
        first, last = math.floor(lo / step) + 1, math.floor(hi / step + 1e-9)
        candidates = sorted(range(first, last + 1), key=lambda k: abs(k * step - knob))
        for k in candidates[:3]:
            value = round(k * step, decimals)
            if lo < value <= hi and count(value) == same:
                return value
    return knob
