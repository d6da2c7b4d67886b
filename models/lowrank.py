"""The classic low-rank baseline ("_low" in the paper): one factor set, rank ≤ its inner rank.

Linear: ``W = X·Yᵀ`` (rank ≤ r, ``r(m+n)`` parameters). Convolution: Tucker-2 ``W = T ×₁ X ×₂ Y``
(``r²k² + r(O+I)`` parameters). ``models.rank.lowrank_rank_for_budget`` picks r so the count matches
FedPara's at the same γ without exceeding it. Initialized so ``var(W)`` is Kaiming's ``2 / fan_in``.
With ``tanh=True`` the product passes through tanh (``W = tanh(X·Yᵀ)``), mirroring FedPara's option.
"""

from __future__ import annotations

import torch
from torch import Tensor

from models.factor_init import kaiming_variance
from models.factorized import FactorizedConv2d, FactorizedLayer, FactorizedLinear


class _SingleProduct(FactorizedLayer):
    """The low-rank composition and initialization, shared by the linear and the conv layer."""

    factor_sets = ("",)

    def composed_weight(self) -> Tensor:
        w = self.factor_set("")
        return torch.tanh(w) if self.tanh else w

    def reset_factors(self) -> None:
        self.init_factor_set("", kaiming_variance(self.fan_in, self.init_gain))


class LowRankLinear(_SingleProduct, FactorizedLinear):
    """``W = X·Yᵀ``, a drop-in for ``nn.Linear`` with ``r(in+out)`` weight parameters."""


class LowRankConv2d(_SingleProduct, FactorizedConv2d):
    """Tucker-2 ``W = T ×₁ X ×₂ Y``, a drop-in for ``nn.Conv2d`` (groups=1)."""
