"""VGG16 with GroupNorm, the paper's CIFAR/CINIC model (docs/method.md, "Models").

Every conv (the 3-channel stem included, as in the authors' and the Flower baseline's models) is built by
the chosen parameterization; the classifier's linear layers and the head stay original by default, which
is what gives the paper's ratios (VGG16_FedPara at γ = 0.1 keeps 10.14 % of the parameters for CIFAR-10,
the paper's 10.1 %; docs/method.md, "Budgets").
"""

from __future__ import annotations

from torch import Tensor, nn

from models.architecture import Architecture, as_image
from models.parameterization import ORIGINAL, Parameterization

VGG16_PLAN = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
NORM_GROUPS = 2
CLASSIFIER_WIDTH = 512


class VGG16(nn.Module):
    """conv3×3 + GroupNorm(2) + ReLU stacks with five max-pools, then Dropout/512/ReLU ×2 and ``head``."""

    def __init__(self, num_classes: int, input_shape: tuple[int, int, int], convs: Parameterization,
                 linears: Parameterization = ORIGINAL, narrow: int = 1) -> None:
        """``narrow`` divides every width (channels and the classifier's 512): the tests train a narrow copy,
        whose layers follow the same per-layer rules, where the full model would take minutes on a CPU."""
        super().__init__()
        channels, height, width = input_shape
        hidden = CLASSIFIER_WIDTH // narrow
        layers: list[nn.Module] = []
        for step in VGG16_PLAN:
            if isinstance(step, str):  # "M"
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            else:
                out = step // narrow
                layers += [convs.conv2d(channels, out, 3, padding=1), nn.GroupNorm(NORM_GROUPS, out),
                           nn.ReLU(inplace=True)]
                channels = out
        if height < 1 or width < 1:
            raise ValueError(f"input_shape {input_shape} is too small for VGG16's five 2×2 max-pools")
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(), linears.linear(channels * height * width, hidden), nn.ReLU(inplace=True),
            nn.Dropout(), linears.linear(hidden, hidden), nn.ReLU(inplace=True),
        )
        self.head = linears.head(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.classifier(self.features(x)))


ARCHITECTURE = Architecture("vgg16", "image", lambda classes, shape, layers: VGG16(classes, as_image(shape), layers),
                            reported_on="cifar10", min_image_size=2 ** VGG16_PLAN.count("M"))
