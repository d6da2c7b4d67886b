"""CIFAR-style augmentation as batched tensor ops on the worker's device (no DataLoader, no PIL).

Random crop with zero padding is a padded copy plus one gather per batch; the flip is a `torch.where`.
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
    rows = (dy[:, None] + torch.arange(h, device=device)[None, :])  # [n, h]
    cols = (dx[:, None] + torch.arange(w, device=device)[None, :])  # [n, w]
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # [n, h, w, c]
    return cropped.permute(0, 3, 1, 2)
