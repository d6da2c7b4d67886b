"""Initial scales for factorized weights, so every parameterization starts at Kaiming's variance.

Why this needs thought (PAPER.md §1, the authors' note): a factorized weight is a *product* of random
tensors, and its scale is the product of theirs times the number of summed terms. Initializing each factor
with its own Kaiming std would give a composed weight whose scale depends on r and on the layer's size, and
FedPara's Hadamard product of two such products explodes or vanishes further.

Derivation, for independent zero-mean factors with equal std σ:

- ``X·Yᵀ`` (X ∈ R^{m×r}, Y ∈ R^{n×r}): each entry sums r products of two factors, ``var = r·σ⁴``.
- Tucker-2 ``T ×₁ X ×₂ Y`` (T ∈ R^{r×r×k×k}): each entry sums r² products of three, ``var = r²·σ⁶``.
- Hadamard product of independent zero-mean W1, W2: ``var(W1 ⊙ W2) = var(W1)·var(W2)``.
- pFedPara ``W1 ⊙ (W2 + 1)``: ``var = var(W1)·(var(W2) + 1)``.

So a target variance v for one factor product with ``terms`` summed products of ``num_factors`` factors
needs ``σ = (v / terms)^(1 / (2·num_factors))``, which :func:`factor_std` returns. Equal stds keep the
factors' gradients balanced (each factor's gradient is scaled by the others).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def kaiming_variance(fan_in: int, gain: float = math.sqrt(2.0)) -> float:
    """He et al.'s ``gain² / fan_in``: the variance that keeps ReLU activations' scale through depth."""
    return gain * gain / fan_in


def factor_std(target_variance: float, terms: int, num_factors: int) -> float:
    """Std of each of ``num_factors`` factors whose product, summed over ``terms``, has ``target_variance``."""
    return (target_variance / terms) ** (1.0 / (2 * num_factors))


def draw_normal_(tensor: Tensor, std: float) -> Tensor:
    """Fill ``tensor`` with N(0, std²) in place; a meta tensor (a shape-only model, built to count its
    parameters) is left as is, because drawing on the meta device imports torch._dynamo (seconds)."""
    if not tensor.is_meta:
        with torch.no_grad():
            tensor.normal_(0.0, std)
    return tensor
