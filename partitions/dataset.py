"""A dataset as a few compact tensors, and the record of what the runner must know about it before loading it.

Images are uint8 [N, C, H, W] and labels int64, so a worker can hold its clients' samples on its
device and draw batches with tensor indexing; there are no per-sample Python objects anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from torch import Tensor


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are not where they should be; the message says how to get them."""


def _always_there(root: Path) -> None:
    """The check of a dataset that is generated, not read from disk."""


@dataclass(frozen=True)
class DatasetInfo:
    """One dataset's record, declared in its loader's module and listed in ``partitions.registry``: the facts
    known without loading (enough to validate a config and build a model) and how to check and load it."""

    name: str
    kind: Literal["image", "text"]  # what an architecture must read (``models.Architecture.input_kind``)
    num_classes: int
    input_shape: tuple[int, ...]  # one sample: (C, H, W) images or an (L,) window of token ids
    natural: bool  # has natural users (LEAF writers / speaking roles), so the "natural" split applies
    load: Callable[[Path, bool, int], FederatedDataset]  # (root, download, seed) -> the dataset
    check: Callable[[Path], None] = _always_there  # raises DatasetNotFoundError saying how to get the files
    downloadable: bool = False  # ``load`` fetches it when download is True (so a missing copy passes the check)
    augment: bool = False  # CIFAR-style random crop and flip suit its training images (runner.engine.augment)


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
