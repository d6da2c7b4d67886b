"""CINIC-10 from its ImageFolder layout (``<root>/cinic10/{train,valid,test}/<class>/*.png``).

The PNGs are decoded once into one uint8 tensor per split; ``train`` is the training set (CINIC's
``valid`` split is left for model selection), ``test`` the test set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from partitions.dataset import DatasetInfo, DatasetNotFoundError, FederatedDataset

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN, STD = (0.47889522, 0.47227842, 0.43047404), (0.24205776, 0.23828046, 0.25874835)


def check_cinic(root: str | Path) -> None:
    base = Path(root) / "cinic10"
    for split in ("train", "test"):
        if not (base / split).is_dir() or not any((base / split).glob("*/*.png")):
            raise DatasetNotFoundError(
                f"cinic10: no images in {base / split}. Download CINIC-10 from Edinburgh DataShare "
                f"(datashare.ed.ac.uk/handle/10283/3192) and extract it to {base} (train/, valid/, test/)")


def _read_split(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for label, name in enumerate(CLASSES):
        for file in sorted((folder / name).glob("*.png")):
            with Image.open(file) as image:
                images.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels, dtype=torch.int64)


def load_cinic(root: str | Path) -> FederatedDataset:
    check_cinic(root)
    base = Path(root) / "cinic10"
    x_train, y_train = _read_split(base / "train")
    x_test, y_test = _read_split(base / "test")
    return FederatedDataset(CINIC10.name, CINIC10.kind, x_train, y_train, x_test, y_test, CINIC10.num_classes,
                            MEAN, STD)


CINIC10 = DatasetInfo("cinic10", "image", len(CLASSES), (3, 32, 32), False,
                      load=lambda root, download, seed: load_cinic(root), check=check_cinic, augment=True)
