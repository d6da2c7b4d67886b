"""Each real on-disk format, written small by the test and loaded through the real code path."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from partitions import DATASETS, DatasetNotFoundError, check_available, load_dataset

RNG = np.random.default_rng(0)


def write_cifar(root: Path, name: str, per_batch: int = 4) -> dict:
    folder, key, files, classes = {
        "cifar10": ("cifar-10-batches-py", "labels", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], 10),
        "cifar100": ("cifar-100-python", "fine_labels", ["train", "test"], 100)}[name]
    (root / folder).mkdir(parents=True, exist_ok=True)
    written = {}
    for file in files:
        data = RNG.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = RNG.integers(0, classes, per_batch).tolist()
        with open(root / folder / file, "wb") as handle:
            pickle.dump({"data": data, key: labels, "batch_label": file}, handle)
        written[file] = (data, labels)
    return written


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_pickles_load_as_nchw_uint8(tmp_path, name):
    written = write_cifar(tmp_path, name)
    ds = load_dataset(name, tmp_path)
    train_files = [f for f in written if f not in ("test_batch", "test")]
    assert ds.x_train.shape == (4 * len(train_files), 3, 32, 32) and ds.x_train.dtype == torch.uint8
    first_data, first_labels = written[train_files[0]]
    # CIFAR rows are 1024 red, 1024 green, 1024 blue values: pixel (0, 0) of channel 1 is entry 1024
    assert ds.x_train[0, 1, 0, 0] == first_data[0, 1024]
    assert ds.y_train[:4].tolist() == first_labels and ds.y_train.dtype == torch.int64
    assert ds.x_test.shape == (4, 3, 32, 32) and ds.num_classes == DATASETS[name].num_classes


def write_idx(path: Path, array: np.ndarray) -> None:
    magic = 2051 if array.ndim == 3 else 2049
    with open(path, "wb") as handle:
        handle.write(struct.pack(">i", magic) + b"".join(struct.pack(">i", d) for d in array.shape))
        handle.write(array.astype(np.uint8).tobytes())


def test_mnist_idx_files_load_through_torchvision(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = RNG.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5, 9])
    write_idx(raw / "train-images-idx3-ubyte", images)
    write_idx(raw / "train-labels-idx1-ubyte", labels)
    write_idx(raw / "t10k-images-idx3-ubyte", images[:2])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[:2])
    ds = load_dataset("mnist", tmp_path)
    assert ds.x_train.shape == (6, 1, 28, 28) and torch.equal(ds.x_train[2, 0], torch.from_numpy(images[2]))
    assert ds.y_train.tolist() == labels.tolist() and ds.x_test.shape == (2, 1, 28, 28)


def test_cinic_image_folder_loads(tmp_path):
    for split, per_class in (("train", 2), ("valid", 1), ("test", 1)):
        for c, name in enumerate(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                  "ship", "truck"][:3]):
            folder = tmp_path / "cinic10" / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(np.full((32, 32, 3), 10 * c + i, np.uint8)).save(folder / f"{split}_{i}.png")
    ds = load_dataset("cinic10", tmp_path)
    assert ds.x_train.shape == (6, 3, 32, 32) and ds.y_train.tolist() == [0, 0, 1, 1, 2, 2]
    assert int(ds.x_train[3, 0, 5, 5]) == 11 and ds.x_test.shape == (3, 3, 32, 32)


def write_leaf(root: Path, name: str, users: dict[str, tuple[list, list]], split: str) -> None:
    folder = root / name / split
    folder.mkdir(parents=True, exist_ok=True)
    blob = {"users": list(users), "num_samples": [len(y) for _, y in users.values()],
            "user_data": {u: {"x": x, "y": y} for u, (x, y) in users.items()}}
    (folder / f"all_data_0_niid_0_keep_0_{split}_9.json").write_text(json.dumps(blob))


def test_femnist_leaf_json_keeps_users(tmp_path):
    pixels = lambda v: [v] * 784  # noqa: E731
    write_leaf(tmp_path, "femnist", {"f0001": ([pixels(1.0), pixels(0.0)], [3, 61]), "f0002": ([pixels(0.5)], [7])},
               "train")
    write_leaf(tmp_path, "femnist", {"f0002": ([pixels(0.2)], [7]), "f0001": ([pixels(1.0)], [3])}, "test")
    ds = load_dataset("femnist", tmp_path)
    assert ds.x_train.shape == (3, 1, 28, 28) and ds.x_train.dtype == torch.uint8
    assert ds.x_train[0].unique().tolist() == [255] and ds.x_train[2].unique().tolist() == [128]
    assert ds.y_train.tolist() == [3, 61, 7]
    assert ds.train_users.tolist() == [0, 0, 1] and ds.test_users.tolist() == [1, 0]  # same ids across splits


def test_shakespeare_leaf_json_encodes_with_the_80_symbol_vocabulary(tmp_path):
    from partitions.leaf import SHAKESPEARE_VOCAB

    assert len(SHAKESPEARE_VOCAB) == 80
    line = ("To be, or not to be: that is the question. " * 3)[:80]
    write_leaf(tmp_path, "shakespeare", {"HAMLET": ([line], ["W"]), "OPHELIA": ([line[::-1]], ["o"])}, "train")
    write_leaf(tmp_path, "shakespeare", {"HAMLET": ([line], ["!"])}, "test")
    ds = load_dataset("shakespeare", tmp_path)
    assert ds.x_train.shape == (2, 80) and ds.x_train.dtype == torch.int64
    assert "".join(SHAKESPEARE_VOCAB[i] for i in ds.x_train[0]) == line
    assert SHAKESPEARE_VOCAB[ds.y_train[0]] == "W" and ds.y_test.tolist() == [SHAKESPEARE_VOCAB.index("!")]


@pytest.mark.parametrize("name, fragment", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
                                            ("mnist", "MNIST"), ("cinic10", "cinic10"), ("femnist", "femnist"),
                                            ("shakespeare", "shakespeare")])
def test_missing_data_says_where_it_goes(tmp_path, name, fragment):
    with pytest.raises(DatasetNotFoundError, match=fragment) as error:
        check_available(name, tmp_path)
    assert str(tmp_path) in str(error.value)
    with pytest.raises(DatasetNotFoundError):
        load_dataset(name, tmp_path)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist"])
def test_a_dataset_torchvision_will_download_passes_the_check(tmp_path, name):
    check_available(name, tmp_path, download=True)  # loading fetches it: refusing would make download useless


@pytest.mark.parametrize("name", ["cinic10", "femnist", "shakespeare"])
def test_download_does_not_excuse_a_dataset_nothing_can_fetch(tmp_path, name):
    with pytest.raises(DatasetNotFoundError):
        check_available(name, tmp_path, download=True)


def test_unknown_dataset_is_named():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet", "/nowhere")


class SlowCifar10Archive:
    """Stands in for torchvision.datasets.CIFAR10: a slow fetch that writes the files piece by piece and
    records which process fetched, so racing processes show whether they fetched one at a time."""

    log: Path

    def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
        import os
        import time

        assert download
        with open(self.log, "a") as handle:
            handle.write(f"{os.getpid()} start\n")
        if train:
            time.sleep(0.3)  # long enough for every racer to arrive while the first is mid-fetch
            write_cifar(Path(root), "cifar10", per_batch=2)
        with open(self.log, "a") as handle:
            handle.write(f"{os.getpid()} end\n")


def _load_after(barrier, root: Path) -> None:
    barrier.wait()
    ds = load_dataset("cifar10", root, download=True)
    assert ds.x_train.shape == (10, 3, 32, 32)


def test_processes_loading_one_dataset_at_once_download_it_once(tmp_path, monkeypatch):
    import multiprocessing

    import torchvision

    SlowCifar10Archive.log = tmp_path / "fetches.log"
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", SlowCifar10Archive)
    context = multiprocessing.get_context("fork")  # the children inherit the slow archive
    barrier = context.Barrier(4)
    racers = [context.Process(target=_load_after, args=(barrier, tmp_path / "data")) for _ in range(4)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(60)
    assert [racer.exitcode for racer in racers] == [0, 0, 0, 0]  # every process loaded the complete files
    events = SlowCifar10Archive.log.read_text().split()
    fetchers = set(events[0::2])
    assert len(fetchers) == 1, events  # one process fetched (train and test), the other three waited
    assert events[1::2] == ["start", "end", "start", "end"]
    assert list(load_dataset("cifar10", tmp_path / "data").y_train.shape) == [10]
