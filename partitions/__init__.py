"""Datasets as compact tensors and the ways they are split across federated clients."""

from __future__ import annotations

from pathlib import Path

from partitions.cinic import check_cinic, load_cinic
from partitions.dataset import DATASETS, DatasetInfo, DatasetNotFoundError, FederatedDataset
from partitions.leaf import check_leaf, load_femnist, load_shakespeare
from partitions.splits import (
    SCHEMES,
    ClientPartition,
    dirichlet_split,
    hold_out,
    iid_split,
    natural_split,
    partition_clients,
    pathological_split,
    subsample,
)
from partitions.synthetic import synthetic_images, synthetic_text
from partitions.torchvision_sets import check_cifar, check_mnist, load_cifar, load_mnist


def _known(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")


DOWNLOADABLE = ("cifar10", "cifar100", "mnist")  # torchvision fetches these when loaded with download=True


def check_available(name: str, root: str | Path, download: bool = False) -> None:
    """Cheap existence check of a dataset's files; raises DatasetNotFoundError saying how to get them.

    A dataset that loading will download (``download`` and one of :data:`DOWNLOADABLE`) passes."""
    _known(name)
    if download and name in DOWNLOADABLE:
        return
    if name in ("cifar10", "cifar100"):
        check_cifar(name, root)
    elif name == "mnist":
        check_mnist(root)
    elif name == "cinic10":
        check_cinic(root)
    elif name in ("femnist", "shakespeare"):
        check_leaf(name, root)


def load_dataset(name: str, root: str | Path, *, download: bool = False, seed: int = 0) -> FederatedDataset:
    """Load a dataset once into tensors (synthetic ones are generated, deterministically for ``seed``)."""
    _known(name)
    if name == "synthetic":
        return synthetic_images(seed)
    if name == "synthetic_text":
        return synthetic_text(seed)
    if name in ("cifar10", "cifar100"):
        return load_cifar(name, root, download)
    if name == "mnist":
        return load_mnist(root, download)
    if name == "cinic10":
        return load_cinic(root)
    return load_femnist(root) if name == "femnist" else load_shakespeare(root)


__all__ = [
    "DATASETS",
    "DOWNLOADABLE",
    "SCHEMES",
    "ClientPartition",
    "DatasetInfo",
    "DatasetNotFoundError",
    "FederatedDataset",
    "check_available",
    "dirichlet_split",
    "hold_out",
    "iid_split",
    "load_dataset",
    "natural_split",
    "partition_clients",
    "pathological_split",
    "subsample",
]
