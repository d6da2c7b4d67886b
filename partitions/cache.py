"""Generated datasets kept on disk, so every worker of every trial does not generate them again.

A synthetic dataset takes about a second of CPU to generate and is the same for the same seed; every worker
process of a trial generates it on start. The first one to finish writes it to the per-user cache
(``$FEDPARA_DATA_CACHE``, else ``~/.cache/fedpara-runner/data``) under a name that hashes the generator's source
and the torch and numpy versions, so an edited generator never reads an old file; it is written to a temporary
name and renamed, so workers starting together never read half a file. A cache that cannot be written or read
only costs the generation.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from partitions.dataset import FederatedDataset

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    return Path(os.environ.get("FEDPARA_DATA_CACHE") or Path.home() / ".cache" / "fedpara-runner" / "data")


def cached_on_disk(generate: Callable[..., FederatedDataset]) -> Callable[..., FederatedDataset]:
    """``generate(seed)`` read from the cache when it is there, generated and written there when not; a call
    with other arguments (a smaller dataset for a test) is generated as asked."""
    module = inspect.getmodule(generate)
    source = inspect.getsource(module) if module is not None else inspect.getsource(generate)
    # the generator's code and the libraries whose random streams it draws from: nodes on other versions differ
    version = hashlib.sha256(f"{source}|torch {torch.__version__}|numpy {np.__version__}".encode()).hexdigest()[:16]

    @functools.wraps(generate)
    def load(seed: int = 0, **sizes: int) -> FederatedDataset:
        if sizes:
            return generate(seed, **sizes)
        path = cache_dir() / f"{generate.__name__}-{seed}-{version}.pt"
        try:
            return _read(path)
        except FileNotFoundError:
            pass
        except Exception as error:  # a damaged file: generate again and replace it
            log.warning("%s: unreadable (%s); generating the dataset again", path, error)
        dataset = generate(seed)
        try:
            _write(dataset, path)
        except OSError as error:
            log.warning("cannot cache the generated dataset at %s (%s)", path, error)
        return dataset

    return load


def _write(dataset: FederatedDataset, path: Path) -> None:
    values = {f.name: getattr(dataset, f.name) for f in fields(dataset)}
    values = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in values.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            torch.save(values, out)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read(path: Path) -> FederatedDataset:
    values = torch.load(path, weights_only=True)
    for users in ("train_users", "test_users"):
        if isinstance(values.get(users), torch.Tensor):
            values[users] = values[users].numpy()
    values["mean"], values["std"] = tuple(values["mean"]), tuple(values["std"])
    return FederatedDataset(**values)
