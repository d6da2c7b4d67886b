"""A generated dataset is written once to the cache and read back equal; a damaged or foreign file is not used."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from partitions.synthetic import synthetic_images, synthetic_text


def same(a, b) -> None:
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and torch.equal(x, y), field.name
        elif isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), field.name
        else:
            assert x == y, field.name


@pytest.mark.parametrize("generate", [synthetic_images, synthetic_text])
def test_a_generated_dataset_is_cached_once_and_read_back_equal(generate, tmp_path, monkeypatch):
    monkeypatch.setenv("FEDPARA_DATA_CACHE", str(tmp_path))
    first = generate(5)
    [written] = tmp_path.iterdir()
    assert written.name.startswith(f"{generate.__name__}-5-") and written.suffix == ".pt"
    stamp = written.stat().st_mtime_ns
    again = generate(5)
    assert written.stat().st_mtime_ns == stamp and len(list(tmp_path.iterdir())) == 1  # read, not rewritten
    same(first, again)
    same(first, generate.__wrapped__(5))  # what the generator itself gives
    assert not torch.equal(generate(6).y_train[:50], first.y_train[:50])  # another seed, another file
    assert len(list(tmp_path.iterdir())) == 2


def test_a_damaged_cache_file_is_generated_again_and_replaced(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FEDPARA_DATA_CACHE", str(tmp_path))
    reference = synthetic_images(1)
    [written] = tmp_path.iterdir()
    written.write_bytes(written.read_bytes()[:1000])
    same(synthetic_images(1), reference)
    assert "unreadable" in caplog.text and str(written) in caplog.text
    same(synthetic_images(1), reference)  # the replaced file reads back


def test_a_smaller_dataset_for_a_test_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDPARA_DATA_CACHE", str(tmp_path))
    small = synthetic_images(0, train=100, test=10)
    assert small.x_train.shape[0] == 100 and not list(tmp_path.iterdir())


def test_an_unwritable_cache_only_costs_the_generation(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FEDPARA_DATA_CACHE", str(blocker / "data"))
    assert synthetic_text(2).x_train.shape[1] == 80
