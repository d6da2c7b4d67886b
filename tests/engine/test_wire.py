"""Tensors through the object store as arrays, and the allocator setting the actors run with."""

from __future__ import annotations

import resource
import sys

import numpy as np
import pytest
import torch

from runner.engine.allocator import reuse_freed_memory
from runner.engine.wire import from_wire, read_only_view, to_wire


def test_a_nested_state_round_trips_as_arrays_and_comes_back_writable():
    state = {"weights": {"w": torch.randn(3, 4), "steps": torch.tensor(7)}, "control": {"c": torch.zeros(2)}}
    wire = to_wire(state)
    assert isinstance(wire["weights"]["w"], np.ndarray) and wire["weights"]["w"].shape == (3, 4)
    frozen = {k: {n: a.copy() for n, a in v.items()} for k, v in wire.items()}
    for tensors in frozen.values():
        for a in tensors.values():
            a.flags.writeable = False  # as arrays read from the object store are
    back = from_wire(frozen)
    assert torch.equal(back["weights"]["w"], state["weights"]["w"]) and back["weights"]["steps"].item() == 7
    back["weights"]["w"].add_(1)  # a copy: writing is allowed and leaves the source alone
    assert torch.equal(torch.from_numpy(frozen["weights"]["w"].copy()), state["weights"]["w"])


def test_bfloat16_has_no_numpy_dtype_and_travels_as_a_tensor():
    wire = to_wire({"x": torch.ones(3, dtype=torch.bfloat16)})
    assert isinstance(wire["x"], torch.Tensor)
    assert from_wire(wire)["x"].dtype == torch.bfloat16


def test_read_only_view_shares_memory_without_copying():
    array = np.arange(6, dtype=np.float64)
    array.flags.writeable = False
    view = read_only_view(array)
    assert view.data_ptr() == array.ctypes.data and torch.equal(view, torch.arange(6, dtype=torch.float64))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_freed_buffers_are_reused_without_new_page_faults():
    assert reuse_freed_memory()
    for _ in range(20):  # warm up: the heap grows to its working size
        torch.empty(2_000_000).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(50):  # 8 MB each: without the setting each is fresh mmap'd pages (~14,000 faults in all)
        torch.empty(2_000_000).fill_(1.0)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 1_000
