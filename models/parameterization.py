"""The one place that turns (parameterization, γ or ρ) into a concrete layer.

Architectures never name a layer class: they ask a :class:`Parameterization` for "a linear layer 512→512" or
"a 3×3 conv 64→128" and get the original, low-rank, FedPara or pFedPara version with the rank the rule in
``models.rank`` gives for that shape. A layer an architecture keeps dense asks :data:`ORIGINAL`.

Original layers are re-initialized Kaiming-normal (``std = gain/√fan_in``) with zero bias — the variance the
factorized layers' composed weights start at — so every parameterization starts from the same scale.
(PyTorch's default ``kaiming_uniform_(a=√5)`` would start originals at a 6× smaller variance.)

A classifier head (:meth:`Parameterization.head`) starts at zero instead, in every parameterization, so a
model's first logits are 0 and its first loss is ln(classes) whatever the features' scale
(docs/initialization.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from models import rank as rank_rule
from models.factor_init import draw_normal_
from models.fedpara import FedParaConv2d, FedParaLinear
from models.lowrank import LowRankConv2d, LowRankLinear
from models.pfedpara import PFedParaConv2d, PFedParaLinear

PARAMETERIZATIONS = ("original", "lowrank", "fedpara", "pfedpara")
RELU_GAIN = math.sqrt(2.0)
HEAD_GAIN = 1.0  # a head feeds softmax, not a ReLU: the scale its factors are drawn at before one is zeroed

_LINEAR = {"lowrank": LowRankLinear, "fedpara": FedParaLinear, "pfedpara": PFedParaLinear}
_CONV = {"lowrank": LowRankConv2d, "fedpara": FedParaConv2d, "pfedpara": PFedParaConv2d}


@dataclass(frozen=True)
class Parameterization:
    """How a model's weight layers are built; the same γ (or ρ) for every layer, as in the paper.

    ``kind`` is one of :data:`PARAMETERIZATIONS`. A factorized kind needs exactly one of ``gamma`` (the
    paper's γ ∈ [0, 1] between the full-rank minimum and the original's size) or ``ratio`` (a target
    parameter ratio ρ ∈ (0, 1] per layer). ``original`` ignores both. (A whole-model target is solved into
    one of them by ``models.budget``.)
    """

    kind: str = "original"
    gamma: float | None = None
    ratio: float | None = None
    tanh: bool = False

    def __post_init__(self) -> None:
        if self.kind not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, got {self.kind!r}")
        if self.kind == "original":
            return
        if (self.gamma is None) == (self.ratio is None):
            raise ValueError(f"gamma / ratio: a {self.kind!r} model needs exactly one of them, "
                             f"got gamma={self.gamma}, ratio={self.ratio}")
        if self.gamma is not None and not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if self.ratio is not None and not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")

    def inner_rank(self, out_dim: int, in_dim: int, kernel_size: int | None) -> int:
        """The rank this parameterization gives a layer (``kernel_size=None`` for a linear layer).

        FedPara and pFedPara use the rule directly. The low-rank baseline at a γ takes the largest rank whose
        count does not exceed FedPara's at that γ (equal budget, never more); at a per-layer ratio ρ it solves
        its own count for ρ (``rank.lowrank_rank_from_ratio``), without FedPara's full-rank floor.
        """
        if self.kind == "original":
            raise ValueError("an original layer has no inner rank")
        if self.kind == "lowrank" and self.ratio is not None:
            return rank_rule.lowrank_rank_from_ratio(self.ratio, out_dim, in_dim, kernel_size)
        if self.gamma is not None:
            fedpara_rank = rank_rule.rank_from_gamma(self.gamma, out_dim, in_dim, kernel_size)
        else:
            assert self.ratio is not None  # __post_init__: a factorized kind has gamma or ratio
            fedpara_rank = rank_rule.rank_from_ratio(self.ratio, out_dim, in_dim, kernel_size)
        if self.kind != "lowrank":
            return fedpara_rank
        budget = rank_rule.fedpara_params(out_dim, in_dim, kernel_size, fedpara_rank)
        return rank_rule.lowrank_rank_for_budget(budget, out_dim, in_dim, kernel_size)

    def linear(self, in_features: int, out_features: int, bias: bool = True, *,
               init_gain: float = RELU_GAIN, zero_init: bool = False) -> nn.Module:
        """``nn.Linear(in_features, out_features)`` in this parameterization; ``zero_init``: its weight starts
        at zero (a factorized layer's through one zero factor, so it still learns from the first step)."""
        if self.kind == "original":
            layer = nn.Linear(in_features, out_features, bias)
            _kaiming(layer, in_features, init_gain)
            if zero_init:
                nn.init.zeros_(layer.weight)
            return layer
        return _LINEAR[self.kind](in_features, out_features, bias, tanh=self.tanh, init_gain=init_gain,
                                  zero_init=zero_init, rank=self.inner_rank(out_features, in_features, None))

    def head(self, in_features: int, num_classes: int) -> nn.Module:
        """The classifier: a linear layer whose weight and bias start at zero, so the first logits are 0."""
        return self.linear(in_features, num_classes, init_gain=HEAD_GAIN, zero_init=True)

    def conv2d(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
               padding: int = 0, bias: bool = True) -> nn.Module:
        """``nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)`` in this parameterization."""
        if self.kind == "original":
            conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
            return _kaiming(conv, in_channels * kernel_size * kernel_size, RELU_GAIN)
        return _CONV[self.kind](in_channels, out_channels, kernel_size, stride, padding, bias=bias,
                                tanh=self.tanh, rank=self.inner_rank(out_channels, in_channels, kernel_size))


ORIGINAL = Parameterization("original")


def _kaiming(layer: nn.Linear | nn.Conv2d, fan_in: int, gain: float) -> nn.Module:
    draw_normal_(layer.weight, gain / math.sqrt(fan_in))
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer
