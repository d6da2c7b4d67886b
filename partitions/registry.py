"""``DATASETS``: every dataset's record, by name (each record is declared beside its loader).

The config check, the model's classes and input shape, the check before a trial starts, loading and the
augmentation rule all read this mapping, so adding a dataset is its module (loader and ``DatasetInfo``
record), its line here, and its test.
"""

from __future__ import annotations

from pathlib import Path

from partitions.cinic import CINIC10
from partitions.dataset import DatasetInfo, FederatedDataset
from partitions.leaf import FEMNIST, SHAKESPEARE
from partitions.synthetic import SYNTHETIC, SYNTHETIC_TEXT
from partitions.torchvision_sets import CIFAR10, CIFAR100, MNIST

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in (
    CIFAR10, CIFAR100, MNIST, CINIC10, FEMNIST, SHAKESPEARE, SYNTHETIC, SYNTHETIC_TEXT,
)}


def downloadable() -> tuple[str, ...]:
    """The datasets loading fetches when asked to (``data.download``)."""
    return tuple(name for name, info in DATASETS.items() if info.downloadable)


def dataset_info(name: str) -> DatasetInfo:
    """``name``'s record; ValueError naming the choices for an unknown one."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")
    return DATASETS[name]


def check_available(name: str, root: str | Path, download: bool = False) -> None:
    """Cheap existence check of a dataset's files; raises DatasetNotFoundError saying how to get them.

    A dataset that loading will download (``download`` and a downloadable record) passes."""
    info = dataset_info(name)
    if not (download and info.downloadable):
        info.check(Path(root))


def load_dataset(name: str, root: str | Path, *, download: bool = False, seed: int = 0) -> FederatedDataset:
    """Load a dataset once into tensors (synthetic ones are generated, deterministically for ``seed``)."""
    return dataset_info(name).load(Path(root), download, seed)
