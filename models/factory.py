"""``build_model``: an architecture name and a parameterization name in, a model mapping x → logits out."""

from __future__ import annotations

from torch import nn

from models.budget import solve_for
from models.cnn import SmallCNN
from models.fc2 import FC2
from models.lstm import CharLSTM
from models.parameterization import PARAMETERIZATIONS, Parameterization
from models.resnet import ResNet18
from models.vgg import VGG16

ARCHITECTURES = ("vgg16", "resnet18", "lstm", "fc2", "cnn")
IMAGE_ARCHITECTURES = ("vgg16", "resnet18", "fc2", "cnn")


def build_model(arch: str, parameterization: str, *, num_classes: int, input_shape: tuple[int, ...],
                gamma: float | None = None, ratio: float | None = None, param_ratio: float | None = None,
                tanh: bool = False) -> nn.Module:
    """Build ``arch`` with its weight layers in ``parameterization``; the classifier is ``model.head``.

    ``input_shape`` is (C, H, W) for image models and (L,) for ``"lstm"`` (whose vocabulary is
    ``num_classes``). A factorized model needs exactly one of ``gamma`` / ``ratio`` (per layer) /
    ``param_ratio`` (a share of the whole original model, solved by ``models.budget``); ``"original"``
    ignores them. Which layers are factorized is each architecture's choice (see its module docstring).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    input_shape = tuple(input_shape)
    expected_dims = 3 if arch in IMAGE_ARCHITECTURES else 1
    if len(input_shape) != expected_dims or not all(isinstance(d, int) and d > 0 for d in input_shape):
        layout = "(C, H, W)" if expected_dims == 3 else "(L,)"
        raise ValueError(f"input_shape must be {layout} of positive ints for {arch!r}, got {input_shape}")
    if parameterization == "original":
        gamma = ratio = param_ratio = None
    if param_ratio is not None:
        if gamma is not None or ratio is not None:
            raise ValueError(f"param_ratio: give it alone, not with gamma={gamma} or ratio={ratio}")
        solved = solve_for(arch, parameterization, num_classes, input_shape, param_ratio)
        gamma, ratio = solved.gamma, solved.ratio
    layers = Parameterization(parameterization, gamma=gamma, ratio=ratio, tanh=tanh)

    if arch == "lstm":
        return CharLSTM(num_classes, gates=layers)
    if arch == "fc2":
        return FC2(num_classes, input_shape, layers)
    image = (input_shape[0], input_shape[1], input_shape[2])
    if arch == "vgg16":
        return VGG16(num_classes, image, convs=layers)
    if arch == "resnet18":
        return ResNet18(num_classes, image, convs=layers)
    return SmallCNN(num_classes, image, layers)
