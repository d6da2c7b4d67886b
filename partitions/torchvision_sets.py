"""CIFAR-10, CIFAR-100 and MNIST in torchvision's on-disk layout, loaded once into uint8 tensors.

Downloading goes through torchvision (``download=True``), which also verifies the archives' checksums. The
workers of a cluster node load the same dataset at the same time, so one process downloads while the others
wait on a file lock in the dataset's root, then find the files there (see :func:`download`).
Loading reads the files in their documented formats: CIFAR's pickled batches directly (torchvision's
CIFAR classes refuse any file whose md5 is not the official one, which would make the loader untestable
on small files) and MNIST's idx files through torchvision's own MNIST class.
"""

from __future__ import annotations

import fcntl
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from partitions.dataset import DatasetInfo, DatasetNotFoundError, FederatedDataset


@dataclass(frozen=True)
class CifarLayout:
    """Where torchvision puts a CIFAR dataset's pickled batches, and what is in them."""

    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    labels: str  # the label key inside a batch
    torchvision_class: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def files(self) -> tuple[str, ...]:
        return self.train + self.test


CIFAR = {
    "cifar10": CifarLayout("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                           "labels", "CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": CifarLayout("cifar-100-python", ("train",), ("test",), "fine_labels", "CIFAR100",
                            (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _missing(name: str, expected: Path) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"{name}: not found at {expected}. Load it with download=True to fetch it with torchvision where the "
        f"network allows, or copy torchvision's {name} files there (the root is {expected.parent})")


def check_cifar(name: str, root: str | Path) -> None:
    folder = Path(root) / CIFAR[name].folder
    if not all((folder / f).exists() for f in CIFAR[name].files):
        raise _missing(name, folder)


def check_mnist(root: str | Path) -> None:
    raw = Path(root) / "MNIST" / "raw"
    if not all((raw / f).exists() for f in MNIST_FILES):
        raise _missing("mnist", raw)


def fetch_with_torchvision(name: str, root: Path) -> None:
    """Fetch the official archives with torchvision (checksums verified; files already there are kept)."""
    import torchvision

    cls = torchvision.datasets.MNIST if name == "mnist" else getattr(torchvision.datasets,
                                                                        CIFAR[name].torchvision_class)
    for train in (True, False):
        cls(str(root), train=train, download=True)


def download(name: str, root: str | Path, fetch: Callable[[str, Path], None] = fetch_with_torchvision) -> None:
    """Fetch ``name`` into ``root`` once, however many processes ask at the same time.

    The first process to take ``<root>/.<name>.download.lock`` fetches and then leaves ``.<name>.downloaded``
    beside it; the others wait for the lock and find the files complete (two fetches into one directory
    would write the same archive at once). A fetch that failed leaves no marker, so the next process tries.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    done = root / f".{name}.downloaded"
    with _exclusive(root / f".{name}.download.lock"):
        if done.exists() and _present(name, root):
            return
        fetch(name, root)
        done.touch()


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock`` (released when the process exits, even by a crash)."""
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _present(name: str, root: Path) -> bool:
    try:
        check_mnist(root) if name == "mnist" else check_cifar(name, root)
    except DatasetNotFoundError:
        return False
    return True


def _read_cifar_batches(folder: Path, files: tuple[str, ...], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for file in files:
        with open(folder / file, "rb") as handle:
            entry = pickle.load(handle, encoding="latin1")
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry[label_key])
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64)


def load_cifar(name: str, root: str | Path, download_missing: bool = False) -> FederatedDataset:
    if download_missing:
        download(name, root)
    check_cifar(name, root)
    spec = CIFAR[name]
    folder = Path(root) / spec.folder
    x_train, y_train = _read_cifar_batches(folder, spec.train, spec.labels)
    x_test, y_test = _read_cifar_batches(folder, spec.test, spec.labels)
    info = CIFAR10 if name == "cifar10" else CIFAR100
    return FederatedDataset(name, info.kind, x_train, y_train, x_test, y_test, info.num_classes, spec.mean, spec.std)


def load_mnist(root: str | Path, download_missing: bool = False) -> FederatedDataset:
    import torchvision

    if download_missing:
        download("mnist", root)
    check_mnist(root)
    train = torchvision.datasets.MNIST(str(root), train=True)
    test = torchvision.datasets.MNIST(str(root), train=False)
    return FederatedDataset(MNIST.name, MNIST.kind, train.data.unsqueeze(1).contiguous(), train.targets.long(),
                            test.data.unsqueeze(1).contiguous(), test.targets.long(), MNIST.num_classes,
                            (0.1307,), (0.3081,))


# torchvision fetches all three when loaded with download=True; CIFAR's 32×32 photos take the crop-and-flip
# augmentation, MNIST's 28×28 digits do not (a flipped digit is another glyph).
CIFAR10 = DatasetInfo("cifar10", "image", 10, (3, 32, 32), False,
                      load=lambda root, download, seed: load_cifar("cifar10", root, download),
                      check=lambda root: check_cifar("cifar10", root), downloadable=True, augment=True)
CIFAR100 = DatasetInfo("cifar100", "image", 100, (3, 32, 32), False,
                       load=lambda root, download, seed: load_cifar("cifar100", root, download),
                       check=lambda root: check_cifar("cifar100", root), downloadable=True, augment=True)
MNIST = DatasetInfo("mnist", "image", 10, (1, 28, 28), False,
                    load=lambda root, download, seed: load_mnist(root, download), check=check_mnist,
                    downloadable=True)
