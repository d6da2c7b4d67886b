"""FedPara layers: the Hadamard product of two low-rank products (docs/method.md, Props. 1 and 3).

``W = W1 ⊙ W2`` (or ``tanh(W1) ⊙ tanh(W2)``), each ``W_i`` one factor set of inner rank r. The product has
rank up to r² (both conv unfoldings too) for ``2r(m+n)`` parameters (linear) or ``2(r²k² + r(O+I))`` (conv),
where a plain low-rank product with that budget is stuck at rank ≤ 2r.

Initialization: ``var(W1 ⊙ W2) = var(W1)·var(W2)``, so each ``W_i`` gets variance ``√(2 / fan_in)`` and the
composed weight starts at Kaiming's ``2 / fan_in`` whatever r is. Each ``W_i`` then has std ``(2 / fan_in)^¼``:
0.14 for a 512-channel 3×3 conv, where tanh is nearly the identity, up to 0.52 for the 3-channel stem,
where the tanh option shrinks the starting scale a little. A change of ``W1`` reaches W multiplied by ``W2``
(mean square ``var(W2)``) and vice versa, which sets each set's step scale (models.factor_init).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from models.factor_init import kaiming_variance
from models.factorized import FactorizedConv2d, FactorizedLayer, FactorizedLinear


class _HadamardOfTwoProducts(FactorizedLayer):
    """FedPara's composition and initialization, shared by the linear and the conv layer."""

    factor_sets = ("1", "2")

    def composed_weight(self) -> Tensor:
        w1, w2 = self.factor_set("1"), self.factor_set("2")
        if self.tanh:
            w1, w2 = torch.tanh(w1), torch.tanh(w2)
        return w1 * w2

    def reset_factors(self) -> None:
        inner_variance = math.sqrt(kaiming_variance(self.fan_in, self.init_gain))
        self.init_factor_set("1", inner_variance, through=inner_variance)
        self.init_factor_set("2", inner_variance, through=inner_variance)


class FedParaLinear(_HadamardOfTwoProducts, FactorizedLinear):
    """``W = (X1·Y1ᵀ) ⊙ (X2·Y2ᵀ)``, a drop-in for ``nn.Linear`` with ``2r(in+out)`` weight parameters."""


class FedParaConv2d(_HadamardOfTwoProducts, FactorizedConv2d):
    """``W = (T1 ×₁ X1 ×₂ Y1) ⊙ (T2 ×₁ X2 ×₂ Y2)``, a drop-in for ``nn.Conv2d`` (groups=1)."""
