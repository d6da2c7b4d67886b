"""What the code asks of an architecture, in one record that its own module declares.

``models.registry`` collects the records; the factory, the budget solver, the config check and the report
read them, so a new architecture is its module (model class plus record), its line in the registry and its
test, and nothing else branches on its name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from models.parameterization import Parameterization

# The input each kind reads, one sample's shape: an image's (C, H, W), a text window's (L,) token ids.
INPUT_LAYOUTS = {"image": ("C", "H", "W"), "text": ("L",)}


@dataclass(frozen=True)
class Architecture:
    """One architecture: its name, what it reads, how it is built, and the workload it is reported on."""

    name: str
    input_kind: Literal["image", "text"]  # must equal the dataset's kind (``partitions.DatasetInfo.kind``)
    # (num_classes, input_shape, layers) -> the model; ``layers`` builds the weight layers the architecture
    # factorizes (its module docstring says which), and the model's classifier is ``model.head``.
    build: Callable[[int, tuple[int, ...], Parameterization], nn.Module]
    reported_on: str  # the dataset ``python -m models.report`` sizes it for (the paper's workload)
    min_image_size: int = 1  # the smallest height and width an image architecture takes (its pools halve them)

    def check_input_shape(self, input_shape: tuple[int, ...]) -> None:
        """Raise ValueError unless ``input_shape`` is this architecture's layout of positive ints, and an image
        at least ``min_image_size`` each way (checked with the config, before a sweep starts Ray)."""
        layout = INPUT_LAYOUTS[self.input_kind]
        if len(input_shape) != len(layout) or not all(isinstance(d, int) and d > 0 for d in input_shape):
            raise ValueError(f"input_shape must be ({', '.join(layout)}) of positive ints for {self.name!r}, "
                             f"got {input_shape}")
        if self.input_kind == "image" and min(input_shape[1:]) < self.min_image_size:
            raise ValueError(f"{self.name} needs images of at least {self.min_image_size}×{self.min_image_size}, "
                             f"got input_shape {input_shape}")


def as_image(input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``input_shape`` as the (C, H, W) triple image models take (the factory has checked its length)."""
    channels, height, width = input_shape
    return channels, height, width
