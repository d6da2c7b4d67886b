"""CIFAR-style augmentation as batched tensor ops on the worker's device (no DataLoader, no PIL).

Random crop with zero padding and a horizontal flip are one padded copy plus one ``gather``: each
output pixel reads its source in the padded image through a flat index built from the image's random
shift and flip. The result is contiguous, so the ops that follow run at full speed. Which datasets take it is
their record's say (``partitions.DatasetInfo.augment``), and the config's ``train.augment`` turns it off.
"""

from __future__ import annotations

import torch
from torch import Tensor


def random_crop_flip(images: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Randomly shift each image by up to ``padding`` pixels (zero fill) and flip half of them."""
    n, c, h, w = images.shape
    device = images.device
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    rows = dy[:, None] + torch.arange(h, device=device)[None, :]  # [n, h] source rows in the padded image
    cols = dx[:, None] + torch.arange(w, device=device)[None, :]  # [n, w] source columns
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    source = rows[:, :, None] * (w + 2 * padding) + cols[:, None, :]  # [n, h, w] flat index into a padded plane
    gathered = padded.reshape(n, c, -1).gather(2, source.view(n, 1, h * w).expand(n, c, h * w))
    return gathered.view(n, c, h, w)
