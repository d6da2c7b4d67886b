"""The rank rule: how wide each factorized layer's inner rank is, and what it costs in parameters.

Every number the rest of the package needs about ranks comes from here, as pure integer arithmetic,
so the rule can be checked without building a model (docs/method.md, "The rank rule").

A layer is described by ``out_dim`` (O, or m for a linear layer), ``in_dim`` (I, or n) and
``kernel_size``: an int k for a k×k convolution, or ``None`` for a linear layer. The distinction matters
for counting: a convolution's factors include a core tensor ``T ∈ R^{r×r×k×k}`` (Prop. 3), so even a 1×1
convolution pays ``r²`` per core, while a linear layer's ``X·Yᵀ`` (Prop. 1) has no core.

- FedPara / pFedPara: conv ``2(r²k² + r(O+I))``, linear ``2r(m+n)``.
- Low-rank baseline: conv Tucker-2 ``r²k² + r(O+I)``, linear ``r(m+n)``.
- ``r_max`` is the largest r whose exact FedPara count does not exceed the original layer's ``O·I·k²``
  (for a conv this is the paper's quadratic ``2(k²r² + (O+I)r) ≤ O·I·k²``; for a linear layer the count is
  linear in r, so ``r_max = ⌊mn / 2(m+n)⌋``). It is at least 1.
- ``r_min = min(⌈√O⌉, ⌈√I⌉)``: the smallest r with r² ≥ min(O, I), so a FedPara linear layer can be full
  rank (Prop. 1); conv layers use O and I alike.

Tiny layers: when ``r_min > r_max`` (the full-rank minimum already costs more than the original layer),
both knobs return ``r_max``, so γ and ρ never make a layer larger than the original, except in the
degenerate case where even r = 1 is larger (``2(k² + O + I) > O·I·k²`` for a conv); there r = 1 is used.
None of the package's architectures contains such a layer (a test checks it).
"""

from __future__ import annotations

import math

# A float like (1 - γ)·a + γ·b can land a hair above an integer (e.g. 4.000000000000001);
# rounding up must not turn that into the next rank.
_ROUNDING_SLACK = 1e-9


def original_params(out_dim: int, in_dim: int, kernel_size: int | None) -> int:
    """Weight entries of the dense layer (bias excluded)."""
    return out_dim * in_dim * _area(kernel_size)


def fedpara_params(out_dim: int, in_dim: int, kernel_size: int | None, rank: int) -> int:
    """FedPara's two factor sets W1 and W2 (bias excluded)."""
    return 2 * _one_factor_set(out_dim, in_dim, kernel_size, rank)


def pfedpara_params(out_dim: int, in_dim: int, kernel_size: int | None, rank: int) -> int:
    """pFedPara has FedPara's factors; only where they live differs (W2 stays on the client)."""
    return fedpara_params(out_dim, in_dim, kernel_size, rank)


def lowrank_params(out_dim: int, in_dim: int, kernel_size: int | None, rank: int) -> int:
    """One factor set: ``X·Yᵀ`` for a linear layer, Tucker-2 ``T ×₁ X ×₂ Y`` for a convolution."""
    return _one_factor_set(out_dim, in_dim, kernel_size, rank)


def r_min(out_dim: int, in_dim: int) -> int:
    """Smallest inner rank with r² ≥ min(O, I): the full-rank minimum of Prop. 1."""
    return min(_ceil_sqrt(out_dim), _ceil_sqrt(in_dim))


def r_max(out_dim: int, in_dim: int, kernel_size: int | None) -> int:
    """Largest inner rank whose FedPara count does not exceed the original layer's; at least 1."""
    return _largest_rank_within(original_params(out_dim, in_dim, kernel_size),
                                2 * _area_if_core(kernel_size), 2 * (out_dim + in_dim))


def rank_from_gamma(gamma: float, out_dim: int, in_dim: int, kernel_size: int | None) -> int:
    """``r = ⌈(1 − γ)·r_min + γ·r_max⌉``: γ = 0 is the full-rank minimum, γ = 1 the original's size.

    If ``r_min > r_max`` (a layer too small to afford the full-rank minimum) the result is ``r_max``.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    low, high = r_min(out_dim, in_dim), r_max(out_dim, in_dim, kernel_size)
    if low > high:
        return high
    rank = math.ceil((1.0 - gamma) * low + gamma * high - _ROUNDING_SLACK)
    return min(max(rank, low), high)


def rank_from_ratio(ratio: float, out_dim: int, in_dim: int, kernel_size: int | None) -> int:
    """Smallest r whose FedPara count reaches ``ratio × original``, kept within [r_min, r_max].

    This is the authors' notebook knob: solve ``fedpara_params(r) = ρ·O·I·k²`` and round up. The reached
    ratio is therefore ≥ ρ and within one rank step of it, unless r_min (full-rank minimum) lifts it above
    or r_max caps it. If ``r_min > r_max`` the result is ``r_max``.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    target = ratio * original_params(out_dim, in_dim, kernel_size)
    rank = _smallest_rank_reaching(target, 2 * _area_if_core(kernel_size), 2 * (out_dim + in_dim))
    high = r_max(out_dim, in_dim, kernel_size)
    return min(max(rank, r_min(out_dim, in_dim)), high)


def lowrank_rank_from_ratio(ratio: float, out_dim: int, in_dim: int, kernel_size: int | None) -> int:
    """Smallest low-rank (or Tucker-2) rank whose own count reaches ``ratio × original``, within
    [1, the largest rank not exceeding the original]: the per-layer ratio knob of the low-rank baseline,
    with no FedPara full-rank floor (a low-rank layer has none)."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    original = original_params(out_dim, in_dim, kernel_size)
    a, b = _area_if_core(kernel_size), out_dim + in_dim
    rank = _smallest_rank_reaching(ratio * original, a, b)
    return min(rank, _largest_rank_within(original, a, b))


def lowrank_rank_for_budget(budget: int, out_dim: int, in_dim: int, kernel_size: int | None) -> int:
    """Largest low-rank (or Tucker-2) rank whose count does not exceed ``budget``; at least 1.

    The low-rank baseline is compared with FedPara at equal parameters: its budget is FedPara's count at
    the same γ (or ρ), and this picks the closest rank from below, so the baseline never gets more.
    """
    return _largest_rank_within(budget, _area_if_core(kernel_size), out_dim + in_dim)


def _one_factor_set(out_dim: int, in_dim: int, kernel_size: int | None, rank: int) -> int:
    return rank * rank * _area_if_core(kernel_size) + rank * (out_dim + in_dim)


def _area(kernel_size: int | None) -> int:
    return 1 if kernel_size is None else kernel_size * kernel_size


def _area_if_core(kernel_size: int | None) -> int:
    """Coefficient of r² in one factor set: the core's k² for a conv, 0 for a linear layer."""
    return 0 if kernel_size is None else kernel_size * kernel_size


def _ceil_sqrt(n: int) -> int:
    root = math.isqrt(n)
    return root if root * root == n else root + 1


def _largest_rank_within(budget: float, a: int, b: int) -> int:
    """Largest integer r ≥ 1 with a·r² + b·r ≤ budget (a ≥ 0, b > 0); 1 if even r = 1 is over."""
    rank = math.floor(_positive_root(budget, a, b))
    while rank > 0 and a * rank * rank + b * rank > budget:
        rank -= 1
    while a * (rank + 1) ** 2 + b * (rank + 1) <= budget:
        rank += 1
    return max(rank, 1)


def _smallest_rank_reaching(target: float, a: int, b: int) -> int:
    """Smallest integer r ≥ 1 with a·r² + b·r ≥ target."""
    rank = max(math.ceil(_positive_root(target, a, b)), 1)
    while rank > 1 and a * (rank - 1) ** 2 + b * (rank - 1) >= target:
        rank -= 1
    while a * rank * rank + b * rank < target:
        rank += 1
    return rank


def _positive_root(value: float, a: int, b: int) -> float:
    """The r ≥ 0 solving a·r² + b·r = value (the float start point for the integer fix-ups above)."""
    if a == 0:
        return value / b
    return (-b + math.sqrt(b * b + 4.0 * a * value)) / (2.0 * a)
