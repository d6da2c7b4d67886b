"""Initial scales for factorized weights: Kaiming's variance, and SGD steps no larger than an original layer's.

The derivation is written out in docs/initialization.md; in short:

*Variance.* One factor set is a product of ``f`` factors (``X·Yᵀ``: f = 2, Tucker-2 ``T ×₁ X ×₂ Y``: f = 3)
summed over ``terms`` products (r, or r²) and multiplied by a constant ``c`` (the set's ``multiplier``): with
independent zero-mean factors of variances ``s_F²``, ``var(W) = c²·terms·Π s_F²``.

*Step.* Plain SGD on the factors moves the composed weight by ``ΔW = −lr·K(G)``, G = ∂L/∂W, where K is a sum of
one positive operator per factor. The one of factor F multiplies G by the Gram matrices of the *other* factors,
so its largest eigenvalue is ``c²·Π_{F'≠F} u_{F'}`` with ``u_F = e_F·s_F²`` and ``e_F = (√rows + √cols)²`` the
edge of the spectrum of a Gaussian rows×cols matrix's Gram (Bai–Yin) for F's own shape (T counted as its
r × r·k² unfolding, an upper bound for the conv's X and Y sides). An original layer has K = identity.
Where the set's change reaches W multiplied by another tensor (FedPara's ``W1 ⊙ W2``, pFedPara's
``W1 ⊙ (W2 + 1)``), its operator is scaled by that tensor's mean square ``q``.

Asking every one of the layer's ``S`` factors for the same largest step ``t = 1 / (q·S)`` bounds the whole
layer's step by an original layer's (K ≼ identity, to the accuracy of the spectrum edges), whatever the
width and the rank. The equations have one solution: all ``u_F`` equal,

    u = variance·Π e_F / (terms·t),    c² = t / u^(f−1),    s_F² = u / e_F.

Without the multiplier (c = 1, equal factor stds, as before) a linear layer's largest step is about
``(√m + √r)²·√(var/r)`` times an original's: 7× for FC-2's 3072→200 layer at γ = 0.5, and FedPara's Hadamard
partner ``W2`` (mean square √var) hid this for FedPara, while pFedPara's ``W2 + 1`` (mean square ≈ 1) and the
low-rank layer passed it through and diverged at lr 0.1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


def kaiming_variance(fan_in: int, gain: float = math.sqrt(2.0)) -> float:
    """He et al.'s ``gain² / fan_in``: the variance that keeps ReLU activations' scale through depth."""
    return gain * gain / fan_in


def spectrum_edge(rows: int, cols: int) -> float:
    """``(√rows + √cols)²``: the largest eigenvalue of ``AᵀA`` for a rows×cols matrix A of unit-variance
    Gaussian entries (Bai–Yin), i.e. how much a factor of that shape can amplify a step, per unit variance."""
    return (math.sqrt(rows) + math.sqrt(cols)) ** 2


@dataclass(frozen=True)
class FactorScales:
    """One factor set's forward ``multiplier`` c and the std of each of its factors, in factor order."""

    multiplier: float
    stds: tuple[float, ...]


def balanced_scales(variance: float, step: float, terms: int, edges: Sequence[float]) -> FactorScales:
    """The unique scales giving the set's product ``variance`` and a largest SGD step of ``step`` (relative to an
    original layer at the same lr) through each of its factors, whose spectrum edges are ``edges``."""
    u = variance * math.prod(edges) / (terms * step)
    return FactorScales(math.sqrt(step / u ** (len(edges) - 1)), tuple(math.sqrt(u / e) for e in edges))


def draw_normal_(tensor: Tensor, std: float) -> Tensor:
    """Fill ``tensor`` with N(0, std²) in place; a meta tensor (a shape-only model, built to count its
    parameters) is left as is, because drawing on the meta device imports torch._dynamo (seconds)."""
    if not tensor.is_meta:
        with torch.no_grad():
            tensor.normal_(0.0, std)
    return tensor
