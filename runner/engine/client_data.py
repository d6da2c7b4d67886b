"""A client's samples as tensors on the worker's device, and the batches a round trains on.

Images stay uint8 until a batch is drawn; the batch is augmented (still as bytes), converted and normalized in a few
tensor ops. Shuffling and augmentation use the generator they are given, so a client's round is the
same on any worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from runner.engine.augment import random_crop_flip


@dataclass
class Preprocess:
    """How raw stored samples become model inputs (per-channel normalization, optional augmentation)."""

    kind: str  # "image" or "text"
    mean: Tensor | None = None  # [1, C, 1, 1] on the device
    std: Tensor | None = None
    augment: bool = False
    memory_format: torch.memory_format = torch.contiguous_format  # channels-last for conv models on CUDA

    @classmethod
    def for_dataset(cls, kind: str, mean: tuple[float, ...], std: tuple[float, ...], augment: bool,
                    device: torch.device, memory_format: torch.memory_format = torch.contiguous_format) -> Preprocess:
        if kind != "image":
            return cls(kind)
        shape = (1, len(mean), 1, 1)
        return cls(kind, torch.tensor(mean, device=device).view(shape), torch.tensor(std, device=device).view(shape),
                   augment, memory_format)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if self.kind != "image":
            return x.long()
        assert self.mean is not None and self.std is not None  # for_dataset sets them for images
        if self.augment and generator is not None:
            x = random_crop_flip(x, generator)  # on the stored bytes: the same pixels, a quarter of the traffic
        x = x.float().div_(255.0).sub_(self.mean).div_(self.std)  # (x/255 − mean) / std, in place
        return x.contiguous(memory_format=self.memory_format)


@dataclass
class ClientData:
    """One client's training samples (and its own test and validation samples for personalized evaluation)."""

    x: Tensor
    y: Tensor
    x_test: Tensor
    y_test: Tensor
    x_val: Tensor
    y_val: Tensor

    @property
    def num_samples(self) -> int:
        return len(self.y)

    def epoch(self, batch_size: int, preprocess: Preprocess,
              generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        """One pass over the client's data in a fresh random order."""
        order = torch.randperm(len(self.y), generator=generator, device=self.y.device)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield preprocess(self.x[idx], generator), self.y[idx]
