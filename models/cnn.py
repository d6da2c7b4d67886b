"""A small CNN for smoke runs and benchmarks: fast on a CPU, yet every layer kind is exercised.

Two conv blocks (3×3 conv 32 and 64, GroupNorm(2), ReLU, 2×2 max-pool), a 512-wide linear layer and the
head. The convs and the 512-wide layer (almost all of the parameters) are built by the chosen
parameterization; the head stays original, as in VGG16, ResNet-18 and the LSTM.
"""

from __future__ import annotations

from torch import Tensor, nn

from models.architecture import Architecture, as_image
from models.parameterization import ORIGINAL, Parameterization

NORM_GROUPS = 2
WIDTHS = (32, 64)
HIDDEN = 512


class SmallCNN(nn.Module):
    """[conv3×3 → GroupNorm → ReLU → max-pool] × 2 → linear 512 → ReLU → ``head``."""

    def __init__(self, num_classes: int, input_shape: tuple[int, int, int], layers: Parameterization) -> None:
        super().__init__()
        channels, height, width = input_shape
        blocks: list[nn.Module] = []
        for out in WIDTHS:
            blocks += [layers.conv2d(channels, out, 3, padding=1), nn.GroupNorm(NORM_GROUPS, out),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels, height, width = out, height // 2, width // 2
        if height < 1 or width < 1:
            raise ValueError(f"input_shape {input_shape} is too small for two 2×2 max-pools")
        self.features = nn.Sequential(*blocks, nn.Flatten())
        self.hidden = nn.Sequential(layers.linear(channels * height * width, HIDDEN), nn.ReLU(inplace=True))
        self.head = ORIGINAL.head(HIDDEN, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.hidden(self.features(x)))


ARCHITECTURE = Architecture("cnn", "image", lambda classes, shape, layers: SmallCNN(classes, as_image(shape), layers),
                            reported_on="cifar10")
