"""FEMNIST and Shakespeare from LEAF's JSON layout, with each sample's natural user kept.

LEAF writes ``<root>/<dataset>/{train,test}/*.json``, each file holding
``{"users": [...], "num_samples": [...], "user_data": {user: {"x": [...], "y": [...]}}}``.
FEMNIST's x is 784 floats in [0, 1] (a 28×28 character, stored row-major) and y a class in 0..61; it is
kept as uint8 [N, 1, 28, 28]. Shakespeare's x is an 80-character string and y the next character; both
are encoded with LEAF's 80-symbol vocabulary (unknown characters map to the last index, as in LEAF).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from partitions.dataset import DatasetInfo, DatasetNotFoundError, FederatedDataset

SHAKESPEARE_VOCAB = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"
_INDEX = {c: i for i, c in enumerate(SHAKESPEARE_VOCAB)}
HOW_TO_GET = ("generate it with LEAF (github.com/TalwalkarLab/leaf, data/{name}/preprocess.sh) and copy its "
              "data/train and data/test folders to {path}/train and {path}/test")


def encode_text(text: str) -> list[int]:
    unknown = len(SHAKESPEARE_VOCAB) - 1
    return [_INDEX.get(c, unknown) for c in text]


def leaf_dir(name: str, root: str | Path) -> Path:
    return Path(root) / name


def check_leaf(name: str, root: str | Path) -> None:
    path = leaf_dir(name, root)
    for split in ("train", "test"):
        if not any((path / split).glob("*.json")):
            raise DatasetNotFoundError(f"{name}: no LEAF JSON files in {path / split}; "
                                       + HOW_TO_GET.format(name=name, path=path))


def _read_split(directory: Path, users: dict[str, int]) -> tuple[list, list, list]:
    xs, ys, owners = [], [], []
    for file in sorted(directory.glob("*.json")):
        blob = json.loads(file.read_text())
        for user in blob["users"]:
            data = blob["user_data"][user]
            uid = users.setdefault(user, len(users))
            xs.extend(data["x"])
            ys.extend(data["y"])
            owners.extend([uid] * len(data["y"]))
    return xs, ys, owners


def _load(name: str, root: str | Path):
    check_leaf(name, root)
    users: dict[str, int] = {}
    path = leaf_dir(name, root)
    train = _read_split(path / "train", users)
    test = _read_split(path / "test", users)
    return train, test


def load_femnist(root: str | Path) -> FederatedDataset:
    (xtr, ytr, utr), (xte, yte, ute) = _load("femnist", root)

    def images(x: list) -> torch.Tensor:
        return torch.from_numpy((np.asarray(x, np.float32).reshape(-1, 1, 28, 28) * 255).round().astype(np.uint8))

    return FederatedDataset(FEMNIST.name, FEMNIST.kind, images(xtr), torch.tensor(ytr), images(xte), torch.tensor(yte),
                            FEMNIST.num_classes, (0.9637,), (0.1597,), np.asarray(utr), np.asarray(ute))


def load_shakespeare(root: str | Path) -> FederatedDataset:
    (xtr, ytr, utr), (xte, yte, ute) = _load("shakespeare", root)

    def tokens(x: list) -> torch.Tensor:
        return torch.tensor([encode_text(s) for s in x], dtype=torch.int64)

    def labels(y: list) -> torch.Tensor:
        return torch.tensor([encode_text(c)[0] for c in y], dtype=torch.int64)

    return FederatedDataset(SHAKESPEARE.name, SHAKESPEARE.kind, tokens(xtr), labels(ytr), tokens(xte), labels(yte),
                            SHAKESPEARE.num_classes, train_users=np.asarray(utr), test_users=np.asarray(ute))


# Both have natural users (writers, speaking roles); nothing fetches them (LEAF's scripts make them).
FEMNIST = DatasetInfo("femnist", "image", 62, (1, 28, 28), True, load=lambda root, download, seed: load_femnist(root),
                      check=lambda root: check_leaf("femnist", root))
SHAKESPEARE = DatasetInfo("shakespeare", "text", len(SHAKESPEARE_VOCAB), (80,), True,
                          load=lambda root, download, seed: load_shakespeare(root),
                          check=lambda root: check_leaf("shakespeare", root))
