"""``build_model``: an architecture name and a parameterization name in, a model mapping x → logits out."""

from __future__ import annotations

from torch import nn

from models.budget import solve_for
from models.parameterization import PARAMETERIZATIONS, Parameterization
from models.registry import ARCHITECTURES


def build_model(arch: str, parameterization: str, *, num_classes: int, input_shape: tuple[int, ...],
                gamma: float | None = None, ratio: float | None = None, param_ratio: float | None = None,
                tanh: bool = False) -> nn.Module:
    """Build ``arch`` with its weight layers in ``parameterization``; the classifier is ``model.head``.

    ``input_shape`` is (C, H, W) for an architecture that reads images and (L,) for one that reads text
    (the LSTM's vocabulary is ``num_classes``). A factorized model needs exactly one of ``gamma`` / ``ratio``
    (per layer) / ``param_ratio`` (a share of the whole original model, solved by ``models.budget``); ``"original"``
    ignores them. Which layers are factorized is each architecture's choice (see its module docstring);
    ``arch`` is looked up in ``models.registry.ARCHITECTURES``.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {tuple(ARCHITECTURES)}, got {arch!r}")
    architecture = ARCHITECTURES[arch]
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    input_shape = tuple(input_shape)
    architecture.check_input_shape(input_shape)
    if parameterization == "original":
        gamma = ratio = param_ratio = None
    if param_ratio is not None:
        if gamma is not None or ratio is not None:
            raise ValueError(f"param_ratio: give it alone, not with gamma={gamma} or ratio={ratio}")
        solved = solve_for(arch, parameterization, num_classes, input_shape, param_ratio)
        gamma, ratio = solved.gamma, solved.ratio
    layers = Parameterization(parameterization, gamma=gamma, ratio=ratio, tanh=tanh)
    return architecture.build(num_classes, input_shape, layers)
