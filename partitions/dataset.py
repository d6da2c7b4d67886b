"""A dataset as a few compact tensors, and what the runner must know about each dataset before loading it.

Images are uint8 [N, C, H, W] and labels int64, so a worker can hold its clients' samples on its
device and draw batches with tensor indexing; there are no per-sample Python objects anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from torch import Tensor


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are not where they should be; the message says how to get them."""


@dataclass(frozen=True)
class DatasetInfo:
    """Facts known without loading: enough to validate a config and build a model."""

    name: str
    kind: Literal["image", "text"]
    num_classes: int
    input_shape: tuple[int, ...]
    natural: bool  # has natural users (LEAF writers / speaking roles)


@dataclass(frozen=True)
class FederatedDataset:
    name: str
    kind: Literal["image", "text"]
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    train_users: np.ndarray | None = None
    test_users: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


DATASETS: dict[str, DatasetInfo] = {info.name: info for info in (
    DatasetInfo("cifar10", "image", 10, (3, 32, 32), False),
    DatasetInfo("cifar100", "image", 100, (3, 32, 32), False),
    DatasetInfo("mnist", "image", 10, (1, 28, 28), False),
    DatasetInfo("cinic10", "image", 10, (3, 32, 32), False),
    DatasetInfo("femnist", "image", 62, (1, 28, 28), True),
    DatasetInfo("shakespeare", "text", 80, (80,), True),
    DatasetInfo("synthetic", "image", 10, (3, 32, 32), False),
    DatasetInfo("synthetic_text", "text", 80, (80,), True),
)}
