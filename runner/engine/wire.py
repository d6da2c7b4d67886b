"""Tensors through Ray's object store as NumPy arrays.

Ray writes a NumPy array into the object store with one copy and reads it back with none, while a
torch tensor goes through pickle (``bench/object_store.py`` measures both; the README gives its numbers).
What crosses between the driver and the workers every round therefore travels as arrays and becomes tensors
again on the receiving side, copied, since memory in the object store is read-only.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

Tree = Any  # a tensor, or a dict whose values are trees


def to_wire(tree: Tree) -> Tree:
    """Tensors (anywhere in nested dicts) as CPU NumPy arrays; dtypes NumPy lacks stay tensors."""
    if isinstance(tree, dict):
        return {k: to_wire(v) for k, v in tree.items()}
    if isinstance(tree, np.ndarray):  # already an array (a checkpoint written before they held tensors)
        return tree
    tensor = tree.detach().cpu()
    return tensor if tensor.dtype == torch.bfloat16 else tensor.numpy()


def from_wire(tree: Tree, device: torch.device | str = "cpu") -> Tree:
    """The tensors of a tree made by :func:`to_wire`, as writable copies on ``device``."""
    if isinstance(tree, dict):
        return {k: from_wire(v, device) for k, v in tree.items()}
    if isinstance(tree, np.ndarray):
        return torch.tensor(tree, device=device)
    return tree.to(device, copy=True)


def read_only_view(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor over an array's memory, without a copy. The caller must never write to it: the
    memory belongs to the object store, which torch cannot mark read-only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)
