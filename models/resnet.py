"""ResNet-18 in its CIFAR form (3×3 stem, no max-pool) with GroupNorm (docs/method.md, "Models").

Every conv, the 1×1 shortcut projections included, is built by the chosen parameterization; the head stays
original (as VGG16's linears). GroupNorm uses 2 groups, as the paper's VGG16 (the paper does not say for
ResNet); convs have no bias because a norm follows each.
"""

from __future__ import annotations

from torch import Tensor, nn

from models.architecture import Architecture, as_image
from models.parameterization import ORIGINAL, Parameterization

NORM_GROUPS = 2
STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))  # (channels, stride of the stage's first block)


class BasicBlock(nn.Module):
    """Two 3×3 convs with a residual connection (projected by a 1×1 conv when the shape changes)."""

    def __init__(self, convs: Parameterization, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = convs.conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(NORM_GROUPS, out_channels)
        self.conv2 = convs.conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(NORM_GROUPS, out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(convs.conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.GroupNorm(NORM_GROUPS, out_channels))

    def forward(self, x: Tensor) -> Tensor:
        out = self.norm1(self.conv1(x)).relu()
        out = self.norm2(self.conv2(out))
        return (out + self.shortcut(x)).relu()


class ResNet18(nn.Module):
    """3×3 stem, four stages of two BasicBlocks, global average pool, ``head``."""

    def __init__(self, num_classes: int, input_shape: tuple[int, int, int], convs: Parameterization,
                 linears: Parameterization = ORIGINAL, narrow: int = 1) -> None:
        """``narrow`` divides every width, as VGG16's does (a narrow copy for the tests)."""
        super().__init__()
        channels, stem = input_shape[0], STAGES[0][0] // narrow
        self.stem = nn.Sequential(convs.conv2d(channels, stem, 3, 1, padding=1, bias=False),
                                  nn.GroupNorm(NORM_GROUPS, stem), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        channels = stem
        for width, stride in STAGES:
            width //= narrow
            blocks += [BasicBlock(convs, channels, width, stride), BasicBlock(convs, width, width, 1)]
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = linears.head(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.blocks(self.stem(x))))


ARCHITECTURE = Architecture("resnet18", "image",
                            lambda classes, shape, layers: ResNet18(classes, as_image(shape), layers),
                            reported_on="cifar10")
