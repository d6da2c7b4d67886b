"""What a model costs to ship: parameter counts, which state entries stay on the client, and bytes on the wire.

``state_dict`` names are the unit of exchange between client and server, so every function here speaks
in them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from models.factory import build_model

HEAD_PREFIX = "head."
FLOAT_BYTES = 4


def local_parameter_names(model: nn.Module) -> set[str]:
    """State entries the parameterization keeps on the client: pFedPara's W2 factors (empty otherwise).

    Read from each layer's ``local_factor_names`` class attribute, so a new layer type declares its own.
    """
    names = set()
    for prefix, module in model.named_modules():
        for factor in getattr(module, "local_factor_names", ()):
            names.add(f"{prefix}.{factor}" if prefix else factor)
    return names


def head_parameter_names(model: nn.Module) -> set[str]:
    """State entries of ``model.head`` (FedPer's local layer)."""
    return {name for name in model.state_dict() if name.startswith(HEAD_PREFIX)}


def count_parameters(model: nn.Module) -> int:
    """Trainable numbers in the model (every parameter, counted once)."""
    return sum(p.numel() for p in model.parameters())


def original_parameter_count(arch: str, num_classes: int, input_shape: tuple[int, ...]) -> int:
    """Parameters of ``arch`` with original layers; built on the meta device, so no memory is touched."""
    with torch.device("meta"):
        model = build_model(arch, "original", num_classes=num_classes, input_shape=input_shape)
    return count_parameters(model)


def float_bytes(numels: Iterable[int]) -> int:
    """Bytes for sending tensors of these sizes as 32-bit floats (docs/method.md, "Communication")."""
    return FLOAT_BYTES * sum(numels)


def quantized_bytes(numels: Iterable[int], levels: int) -> int:
    """Bytes for sending tensors quantized to ``levels`` levels (QSGD), each tensor packed to whole bytes:
    one 32-bit norm, then a sign bit and ⌈log2(levels + 1)⌉ level bits per element."""
    bits_per_element = 1 + math.ceil(math.log2(levels + 1))
    return sum(math.ceil((32 + n * bits_per_element) / 8) for n in numels)
