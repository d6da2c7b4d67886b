"""The tensor-op augmentation: every output is a zero-padded shift of its input, flipped or not."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from runner.engine.augment import random_crop_flip


def windows(image: torch.Tensor, padding: int) -> dict[tuple[int, int, bool], torch.Tensor]:
    """Every crop the augmentation may produce from one image: (dy, dx, flipped) -> crop."""
    _, h, w = image.shape
    padded = F.pad(image, (padding,) * 4)
    out = {}
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            out[dy, dx, False], out[dy, dx, True] = crop, crop.flip(-1)
    return out


def test_each_output_is_a_shifted_window_and_shifts_and_flips_vary():
    images = torch.rand(64, 3, 12, 10) + 0.1  # no zeros inside, so a zero can only come from the padding
    out = random_crop_flip(images, torch.Generator().manual_seed(0), padding=3)
    assert out.shape == images.shape and out.is_contiguous()
    seen = []
    for image, crop in zip(images, out):
        matches = [key for key, window in windows(image, 3).items() if torch.equal(window, crop)]
        assert len(matches) == 1, "not a padded shift of its own input"
        seen.append(matches[0])
    assert len({(dy, dx) for dy, dx, _ in seen}) > 20  # 49 possible shifts
    flipped = sum(f for _, _, f in seen)
    assert 16 <= flipped <= 48  # p = 0.5 over 64 images


def test_same_generator_state_gives_the_same_batch():
    images = torch.rand(8, 3, 32, 32)
    a = random_crop_flip(images, torch.Generator().manual_seed(7))
    b = random_crop_flip(images, torch.Generator().manual_seed(7))
    c = random_crop_flip(images, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
