"""Datasets that need no download but have real structure to learn (smoke runs, benchmarks, tests).

Images: each class has a smooth random prototype (low-frequency noise upsampled to 32×32); a sample is
its prototype, randomly shifted by a few pixels, scaled in contrast and covered in pixel noise; all
prototypes have the same mean color, so a model must learn spatial patterns.

Text: a character corpus from per-user Markov chains over LEAF's Shakespeare vocabulary. All users share
a vocabulary of words; each user has its own word-transition preferences (its "style"), which makes the
natural per-user split non-IID the way speaking roles are.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from partitions.cache import cached_on_disk
from partitions.dataset import DatasetInfo, FederatedDataset
from partitions.leaf import SHAKESPEARE_VOCAB, encode_text

NUM_CLASSES, TRAIN, TEST, SIDE, NOISE = 10, 5000, 1000, 32, 0.45
WINDOW = 80  # characters a text sample reads, as Shakespeare's


@cached_on_disk
def synthetic_images(seed: int = 0, train: int = TRAIN, test: int = TEST) -> FederatedDataset:
    g = torch.Generator().manual_seed(10_007 + seed)
    prototypes = F.interpolate(torch.rand(NUM_CLASSES, 3, 6, 6, generator=g), size=SIDE + 8, mode="bicubic")
    prototypes = prototypes - prototypes.mean(dim=(2, 3), keepdim=True) + 0.5  # classes share a mean color

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, NUM_CLASSES, (n,), generator=g)
        dy, dx = torch.randint(0, 9, (2, n), generator=g)
        rows = dy[:, None] + torch.arange(SIDE)[None, :]
        cols = dx[:, None] + torch.arange(SIDE)[None, :]
        base = prototypes[y][torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None],
                             rows[:, None, :, None], cols[:, None, None, :]]
        contrast = 0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=g)
        x = 0.5 + contrast * (base - 0.5) + NOISE * torch.randn(n, 3, SIDE, SIDE, generator=g)
        return (x.clamp(0, 1) * 255).round().to(torch.uint8), y

    x_train, y_train = draw(train)
    x_test, y_test = draw(test)
    mean = tuple(float(v) for v in (x_train.float() / 255).mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in (x_train.float() / 255).std(dim=(0, 2, 3)))
    return FederatedDataset(SYNTHETIC.name, SYNTHETIC.kind, x_train, y_train, x_test, y_test, SYNTHETIC.num_classes,
                            mean, std)


@cached_on_disk
def synthetic_text(seed: int = 0, users: int = 30, chars_per_user: int = 3000,
                   window: int = WINDOW) -> FederatedDataset:
    rng = np.random.default_rng(20_011 + seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(list(letters), size=rng.integers(2, 7))) for _ in range(60)]
    shared = rng.dirichlet(np.full(len(words), 0.3), size=len(words))
    xs, ys, owners = [], [], []
    for user in range(users):
        style = rng.dirichlet(np.full(len(words), 0.3), size=len(words))
        transitions = 0.5 * shared + 0.5 * style
        word, text = int(rng.integers(len(words))), list[str]()
        while sum(len(t) + 1 for t in text) < chars_per_user + window + 1:
            token = words[word]
            text.append(token.capitalize() if rng.random() < 0.1 else token)
            word = int(rng.choice(len(words), p=transitions[word]))
        ids = encode_text(" ".join(text) + ".")
        for start in range(0, len(ids) - window - 1, 7):
            xs.append(ids[start:start + window])
            ys.append(ids[start + window])
            owners.append(user)
    x, y, owner = torch.tensor(np.array(xs)), torch.tensor(ys), np.array(owners)
    test_mask = np.zeros(len(y), bool)
    for user in range(users):  # the last fifth of each user's windows is its test data
        idx = np.flatnonzero(owner == user)
        test_mask[idx[int(len(idx) * 0.8):]] = True
    train_mask = ~test_mask
    return FederatedDataset(SYNTHETIC_TEXT.name, SYNTHETIC_TEXT.kind, x[train_mask], y[train_mask], x[test_mask],
                            y[test_mask], SYNTHETIC_TEXT.num_classes, train_users=owner[train_mask],
                            test_users=owner[test_mask])


# Generated for the seed, so nothing to check on disk; the images stand in for CIFAR (augmented alike), the text
# for Shakespeare (natural users: each its own style).
SYNTHETIC = DatasetInfo("synthetic", "image", NUM_CLASSES, (3, SIDE, SIDE), False,
                        load=lambda root, download, seed: synthetic_images(seed), augment=True)
SYNTHETIC_TEXT = DatasetInfo("synthetic_text", "text", len(SHAKESPEARE_VOCAB), (WINDOW,), True,
                             load=lambda root, download, seed: synthetic_text(seed))
