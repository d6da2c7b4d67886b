"""pFedPara layers: ``W = W1 ⊙ (W2 + 1) = W1 ⊙ W2 + W1`` with W1 global and W2 local (docs/method.md).

W1's factors are sent to and averaged by the server; W2's (``local_factor_names``) never leave the client.
The ``+ 1`` makes W1 alone a usable shared weight, and W2 a per-client multiplicative correction of it.

Initialization (our choice): ``var(W) = var(W1)·(var(W2) + 1)``. W2 gets FedPara's inner variance
``v2 = √(2 / fan_in)`` (std 0.14 for a 512-channel 3×3 conv, 0.52 for the 3-channel stem), so ``W2 + 1``
starts around 1: every client starts from the shared weight, modulated a little. W1 gets
``(2 / fan_in) / (1 + v2)``, so the composed weight starts at Kaiming's variance. Initializing both sets
like FedPara's (as the authors' code does) would give ``var(W) ≈ √(2 / fan_in)``: ``(fan_in / 2)^¼`` times
Kaiming's std, 2–7× for this package's layers. W1's change reaches W multiplied by ``W2 + 1`` (mean square
``1 + v2``), W2's multiplied by W1 (mean square ``var(W1)``): each set's step scale is set from it
(models.factor_init), so W1 does not pass a full low-rank step through ``+ 1`` (docs/initialization.md).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from models.factor_init import kaiming_variance
from models.factorized import FactorizedConv2d, FactorizedLayer, FactorizedLinear


class _GlobalTimesLocalPlusOne(FactorizedLayer):
    """pFedPara's composition and initialization, shared by the linear and the conv layer."""

    factor_sets = ("1", "2")

    def composed_weight(self) -> Tensor:
        w1, w2 = self.factor_set("1"), self.factor_set("2")
        if self.tanh:
            w1, w2 = torch.tanh(w1), torch.tanh(w2)
        return w1 * (w2 + 1.0)

    def reset_factors(self) -> None:
        target = kaiming_variance(self.fan_in, self.init_gain)
        local_variance = math.sqrt(target)
        global_variance = target / (1.0 + local_variance)
        self.init_factor_set("1", global_variance, through=1.0 + local_variance)
        self.init_factor_set("2", local_variance, through=global_variance)


class PFedParaLinear(_GlobalTimesLocalPlusOne, FactorizedLinear):
    """``W = (X1·Y1ᵀ) ⊙ (X2·Y2ᵀ + 1)``; ``x2``, ``y2`` stay on the client."""

    local_factor_names = ("x2", "y2")


class PFedParaConv2d(_GlobalTimesLocalPlusOne, FactorizedConv2d):
    """``W = (T1 ×₁ X1 ×₂ Y1) ⊙ (T2 ×₁ X2 ×₂ Y2 + 1)``; ``t2``, ``x2``, ``y2`` stay on the client."""

    local_factor_names = ("t2", "x2", "y2")
