"""FC-2, the two-layer perceptron of the personalization experiments (MNIST / FEMNIST; docs/method.md, "Models").

Both linear layers, the head included, are built by the chosen parameterization: the paper compares the
original, FedPara and pFedPara forms of the whole model.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from models.architecture import Architecture
from models.parameterization import Parameterization

HIDDEN = 200


class FC2(nn.Module):
    """flatten → linear(C·H·W → 200) → ReLU → ``head`` (200 → classes)."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], layers: Parameterization) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Flatten(), layers.linear(math.prod(input_shape), HIDDEN), nn.ReLU())
        self.head = layers.head(HIDDEN, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.hidden(x))


ARCHITECTURE = Architecture("fc2", "image", FC2, reported_on="mnist")
