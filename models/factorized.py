"""Layers whose dense weight is composed from factors on every forward pass.

A parameterization (FedPara, low-rank, pFedPara) only decides *how many* factor sets a layer has, how they
combine and how they are initialized. Everything else a drop-in replacement for ``nn.Linear`` /
``nn.Conv2d`` needs (the call signature, bias, stride/padding/dilation, ``extra_repr``) lives here once.

One *factor set* is one low-rank product, its tensors named by a suffix (``"1"`` gives ``x1``, ``y1``):

- linear (Prop. 1): ``X·Yᵀ`` with ``X ∈ R^{out×r}``, ``Y ∈ R^{in×r}``;
- convolution (Prop. 3, no reshape): ``T ×₁ X ×₂ Y`` with ``T ∈ R^{r×r×kh×kw}``, ``X ∈ R^{O×r}``,
  ``Y ∈ R^{I×r}``, i.e. ``einsum(T[a,b,h,w], X[o,a], Y[i,b]) -> W[o,i,h,w]``.

Each set's product is scaled by a constant ``multiplier`` fixed at initialization from the layer's shape and
rank (models.factor_init, docs/initialization.md): it keeps the composed weight's SGD step no larger than an
original layer's at the same learning rate. It is not a parameter and never leaves the layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.factor_init import balanced_scales, draw_normal_, spectrum_edge

_PairArg = int | tuple[int, int]


class FactorizedLayer(nn.Module):
    """Shared machinery: factor registration, the bias, and the hooks a parameterization fills in
    (``factor_sets``, :meth:`composed_weight`, :meth:`reset_factors`)."""

    factor_sets: tuple[str, ...] = ()  # suffixes of this parameterization's factor sets
    local_factor_names: tuple[str, ...] = ()  # factors that never leave the client (pFedPara's W2)
    factor_letters: tuple[str, ...] = ()  # per factor set: ("x", "y") or ("t", "x", "y")
    bias: Tensor | None
    rank: int
    tanh: bool
    init_gain: float
    zero_init: bool  # the composed weight starts at exactly zero (a classifier head: the first logits are 0)
    multipliers: dict[str, float]  # per factor set: the constant its product is scaled by

    def _register_factors(self, rank: int, out_dim: int, bias: bool, factory: dict) -> None:
        if rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank}")
        self.rank = rank
        self.multipliers = dict.fromkeys(self.factor_sets, 1.0)
        for suffix in self.factor_sets:
            for letter, shape in zip(self.factor_letters, self._factor_shapes()):
                self.register_parameter(letter + suffix, nn.Parameter(torch.empty(shape, **factory)))
        self.register_parameter("bias", nn.Parameter(torch.empty(out_dim, **factory)) if bias else None)

    def _factor_shapes(self) -> tuple[tuple[int, ...], ...]:
        raise NotImplementedError

    @property
    def fan_in(self) -> int:
        raise NotImplementedError

    @property
    def terms(self) -> int:
        """Products summed in one entry of a factor set: r for ``X·Yᵀ``, r² for Tucker-2."""
        raise NotImplementedError

    def factor_edges(self) -> tuple[float, ...]:
        """Per factor letter, the spectrum edge of its shape (models.factor_init.spectrum_edge)."""
        raise NotImplementedError

    def factor_set(self, suffix: str) -> Tensor:
        """The dense product of one factor set (its multiplier included), shaped like the layer's weight."""
        raise NotImplementedError

    def composed_weight(self) -> Tensor:
        """The dense weight this layer applies (what ``nn.Linear.weight`` / ``nn.Conv2d.weight`` would be)."""
        raise NotImplementedError

    def weight_matrix(self) -> Tensor:
        """Alias of :meth:`composed_weight`."""
        return self.composed_weight()

    def reset_factors(self) -> None:
        raise NotImplementedError

    def reset_parameters(self) -> None:
        """Factors so the composed weight starts at Kaiming's variance; bias zero (as the authors' layers).
        With ``zero_init`` the first set's last factor is zero, so the composed weight starts at zero while
        every other factor keeps its scale (the weight is then linear in that factor: it starts moving at once)."""
        self.reset_factors()
        if self.zero_init:
            nn.init.zeros_(getattr(self, self.factor_letters[-1] + self.factor_sets[0]))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def init_factor_set(self, suffix: str, variance: float, through: float = 1.0) -> None:
        """Draw one factor set so its product has ``variance`` per entry and its largest SGD step through each
        of its f factors is ``1 / (through·f)`` of an original layer's: summed over its factors, the set never
        steps further than an original layer. ``through`` is the mean square of what the set's product is
        multiplied by in the composed weight (1 when nothing)."""
        step = 1.0 / (through * len(self.factor_letters))
        scales = balanced_scales(variance, step, self.terms, self.factor_edges())
        self.multipliers[suffix] = scales.multiplier
        for letter, std in zip(self.factor_letters, scales.stds):
            draw_normal_(getattr(self, letter + suffix), std)

    def _repr_tail(self) -> str:
        return f"rank={self.rank}, bias={self.bias is not None}" + (", tanh=True" if self.tanh else "")


class FactorizedLinear(FactorizedLayer):
    """Base of the factorized linear layers; same call signature and output as ``nn.Linear``."""

    factor_letters = ("x", "y")

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, rank: int,
                 tanh: bool = False, init_gain: float = math.sqrt(2.0), zero_init: bool = False, device=None,
                 dtype=None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.tanh, self.init_gain, self.zero_init = tanh, init_gain, zero_init
        self._register_factors(rank, out_features, bias, {"device": device, "dtype": dtype})
        self.reset_parameters()

    def _factor_shapes(self) -> tuple[tuple[int, ...], ...]:
        return (self.out_features, self.rank), (self.in_features, self.rank)

    @property
    def fan_in(self) -> int:
        return self.in_features

    @property
    def terms(self) -> int:
        return self.rank

    def factor_edges(self) -> tuple[float, ...]:
        return spectrum_edge(self.out_features, self.rank), spectrum_edge(self.in_features, self.rank)

    def factor_set(self, suffix: str) -> Tensor:
        return (self.multipliers[suffix] * getattr(self, "x" + suffix)) @ getattr(self, "y" + suffix).T

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.composed_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self._repr_tail()}"


class FactorizedConv2d(FactorizedLayer):
    """Base of the factorized convolutions; same call signature and output as ``nn.Conv2d`` (groups=1)."""

    factor_letters = ("t", "x", "y")

    def __init__(self, in_channels: int, out_channels: int, kernel_size: _PairArg, stride: _PairArg = 1,
                 padding: _PairArg | str = 0, dilation: _PairArg = 1, groups: int = 1, bias: bool = True, *,
                 rank: int, tanh: bool = False, init_gain: float = math.sqrt(2.0), zero_init: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__()
        if groups != 1:
            raise ValueError(f"{type(self).__name__} supports groups=1 only, got groups={groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        self.padding: str | tuple[int, int] = padding if isinstance(padding, str) else _pair(padding)
        self.groups = 1
        self.tanh, self.init_gain, self.zero_init = tanh, init_gain, zero_init
        self._register_factors(rank, out_channels, bias, {"device": device, "dtype": dtype})
        self.reset_parameters()

    def _factor_shapes(self) -> tuple[tuple[int, ...], ...]:
        r = self.rank
        return (r, r, *self.kernel_size), (self.out_channels, r), (self.in_channels, r)

    @property
    def fan_in(self) -> int:
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    @property
    def terms(self) -> int:
        return self.rank * self.rank

    def factor_edges(self) -> tuple[float, ...]:
        r, area = self.rank, self.kernel_size[0] * self.kernel_size[1]
        return spectrum_edge(r, r * area), spectrum_edge(self.out_channels, r), spectrum_edge(self.in_channels, r)

    def factor_set(self, suffix: str) -> Tensor:
        t, x, y = (getattr(self, letter + suffix) for letter in self.factor_letters)
        # torch.einsum contracts left to right: X·T first (O·r²·k² products), then Y (O·I·k²·r).
        return torch.einsum("oa,abhw,ib->oihw", x, self.multipliers[suffix] * t, y)

    def forward(self, input: Tensor) -> Tensor:
        return F.conv2d(input, self.composed_weight(), self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, {self._repr_tail()}")


def dense_weight(layer: nn.Module) -> Tensor:
    """The dense weight of an original or factorized layer (the LSTM composes it once per sequence)."""
    if isinstance(layer, FactorizedLayer):
        return layer.composed_weight()
    weight = layer.weight
    assert isinstance(weight, Tensor)
    return weight


def _pair(value: _PairArg) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])
