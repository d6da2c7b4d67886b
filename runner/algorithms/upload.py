"""What a client's update passes through on its way to the server, whatever the algorithm.

A step of the upload, not an algorithm of its own (pfl-research's postprocessors): FedPAQ is FedAvg
whose upload is quantized, and FedDyn or SCAFFOLD can quantize theirs the same way. Quantization is
QSGD's unbiased stochastic rounding, per tensor: q = ‖v‖·sign(v)·ℓ/s where ℓ rounds s·|v|/‖v‖ up or
down at random with the right odds; the server averages the dequantized values, and the bytes counted
are those of the packed form (:func:`models.quantized_bytes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from models import float_bytes, quantized_bytes
from runner.settings import setting

Update = dict[str, Mapping[str, Tensor]]


def quantize(v: Tensor, levels: int, generator: torch.Generator) -> Tensor:
    """Unbiased stochastic quantization of one tensor to ``levels`` levels of its norm."""
    norm = v.norm()
    if norm == 0:
        return torch.zeros_like(v)
    scaled = v.abs() / norm * levels
    lower = scaled.floor()
    up = torch.rand(v.shape, generator=generator, device=v.device) < (scaled - lower)
    return norm * v.sign() * (lower + up) / levels


@dataclass(frozen=True)
class Upload:
    """The config section ``upload``: how every client's update is encoded for the wire."""

    quantize_levels: int | None = setting(None, ge=1, why="or null: 32-bit floats")

    def apply(self, update: Update, generator: torch.Generator) -> Update:
        """The update as the server will receive it (quantized with the client's own generator, if asked)."""
        if self.quantize_levels is None:
            return update
        return {kind: {n: quantize(t, self.quantize_levels, generator) for n, t in tensors.items()}
                for kind, tensors in update.items()}

    def bytes(self, numels: list[int]) -> int:
        """Bytes for uploading one entry of the update (tensors of these sizes)."""
        if self.quantize_levels is None:
            return float_bytes(numels)
        return quantized_bytes(numels, self.quantize_levels)
