"""Datasets as compact tensors and the ways they are split across federated clients.

``DATASETS`` (``partitions.registry``) is the one list of datasets: each record says what the dataset is and
how to check and load it.
"""

from __future__ import annotations

from partitions.dataset import DatasetInfo, DatasetNotFoundError, FederatedDataset
from partitions.registry import DATASETS, check_available, dataset_info, downloadable, load_dataset
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

__all__ = [
    "DATASETS",
    "SCHEMES",
    "ClientPartition",
    "DatasetInfo",
    "DatasetNotFoundError",
    "FederatedDataset",
    "check_available",
    "dataset_info",
    "dirichlet_split",
    "downloadable",
    "hold_out",
    "iid_split",
    "load_dataset",
    "natural_split",
    "partition_clients",
    "pathological_split",
    "subsample",
]
