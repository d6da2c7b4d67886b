"""The exact sum's compiled loops: bit-identical to the torch ops on edge values, built once, and replaced by
the torch ops (with a warning) where no compiler works."""

from __future__ import annotations

import logging
import math
import os
import stat

import pytest
import torch
from test_aggregation import summed

from runner.algorithms.base import Difference
from runner.engine import aggregation, exact_sum_kernel
from runner.engine.aggregation import CPU_BLOCK, WeightedSum
from runner.engine.exact_sum_kernel import CompiledKernel, TorchKernel, build, cpu_kernel

COMPILER = [os.environ.get("CC", "cc")]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> CompiledKernel:
    import ctypes

    return CompiledKernel(ctypes.CDLL(str(build(COMPILER, tmp_path_factory.mktemp("kernels")))))


def edge_values() -> torch.Tensor:
    """Ties and non-ties at every rounding step, the 2^23 edge of float32's integers, the range's edge at 2^20,
    signed zeros, subnormals, NaN and infinities, and ordinary values of every magnitude."""
    unit = 2.0 ** -40
    k = torch.arange(-40, 41, dtype=torch.float64)
    special = torch.tensor([0.0, -0.0, 1e-45, -1e-45, 2.0 ** -126, unit / 2, -unit / 2, 1.5 * unit, -2.5 * unit,
                            (2 ** 23 - 0.5) * unit, (2 ** 22 + 0.5) * unit, (2 ** 23 + 1) * unit, 2.0 ** -17,
                            2.0 ** 20, -(2.0 ** 20), 2.0 ** 20 * (1 - 2 ** -23), 3e38, -3e38, math.inf, -math.inf,
                            math.nan])
    torch.manual_seed(0)
    return torch.cat([((k + 0.5) * unit).float(), (k * unit * 0.37).float(), special.float(),
                      torch.randn(3000) * 10.0 ** torch.randint(-14, 3, (3000,)).float()])


def words(x: torch.Tensor) -> torch.Tensor:
    """The bits of a float tensor (so that -0.0 and 0.0, or two NaNs, compare as what they are)."""
    return x.view(torch.int32 if x.dtype == torch.float32 else torch.int64)


@pytest.mark.parametrize("with_b", [False, True])
def test_the_compiled_loops_give_the_torch_ops_bits(compiled, with_b):
    v = edge_values()
    a, b = (v + 0.75, torch.full_like(v, 0.75)) if with_b else (v, None)
    parts = [(0, a[:100], None if b is None else b[:100]), (100, a[100:], None if b is None else b[100:])]
    x_torch, x_compiled = torch.empty(len(v)), torch.empty(len(v))
    peak_torch, outside_torch = TorchKernel().quantize(x_torch, parts)
    peak_compiled, outside_compiled = compiled.quantize(x_compiled, parts)
    assert outside_torch and outside_compiled  # the NaN, infinities and ±2^20 are out of range
    assert torch.equal(words(x_torch), words(x_compiled))
    finite = x_torch.abs() < 2.0 ** 60
    x_torch[~finite] = 0.0
    x_compiled[~finite] = 0.0
    low_torch, low_compiled = torch.full((len(v),), 3.0, dtype=torch.float64), torch.full((len(v),), 3.0,
                                                                                        dtype=torch.float64)
    TorchKernel().add(low_torch, x_torch, 77.0)
    compiled.add(low_compiled, x_compiled, 77.0)
    assert torch.equal(words(low_torch), words(low_compiled))
    assert peak_compiled == peak_torch == 0.0  # out of range: the caller masks, then measures
    in_range = [(0, a[:81], None if b is None else b[:81])]  # the ties alone
    ties = compiled.quantize(torch.empty(81), in_range)
    assert ties == TorchKernel().quantize(torch.empty(81), in_range)
    if not with_b:
        assert ties[0] == 40.0  # ±39.5 and 40.5 round to even


@pytest.mark.parametrize(("value", "outside"), [(2.0 ** 20, True), (-(2.0 ** 20), True), (math.nan, True),
                                                (math.inf, True), (2.0 ** 20 * (1 - 2 ** -23), False),
                                                (-3.0 * 2.0 ** -41, False)])
def test_the_range_check_is_the_same_at_its_edge(compiled, value, outside):
    parts = [(0, torch.tensor([0.25, value, -0.5]), None)]
    result = compiled.quantize(torch.empty(3), parts)
    assert result == TorchKernel().quantize(torch.empty(3), parts)
    assert result[1] is outside
    assert result[0] == (0.0 if outside else max(0.5 * 2.0 ** 40, abs(round(value * 2.0 ** 40))))


def test_integer_and_float64_tensors_are_converted_as_torch_does(compiled):
    a = {"n": torch.tensor([5, -7, 2 ** 40]), "d": torch.tensor([1e-13, 0.3, -2.0 ** -41], dtype=torch.float64)}
    b = {"n": torch.tensor([3, 1, 0]), "d": torch.tensor([0.0, 0.1, 0.0], dtype=torch.float64)}
    for name in a:
        parts = [(0, a[name], b[name])]
        x_torch, x_compiled = torch.empty(3), torch.empty(3)
        assert TorchKernel().quantize(x_torch, parts) == compiled.quantize(x_compiled, parts)
        assert torch.equal(words(x_torch), words(x_compiled))


def test_a_weighted_sum_has_the_same_words_with_either_kernel(compiled, monkeypatch):
    """Every path of the sum (lazy differences across blocks, split words, values out of range) on each kernel."""
    torch.manual_seed(4)
    start = {"w": torch.randn(CPU_BLOCK + 9) * 0.1, "b": torch.randn(5)}
    updates = []
    for k, n in enumerate([30.0, 7.0, 500.0, 12.0]):
        trained = {name: t + torch.randn(t.shape) * 10.0 ** -(2 * k) for name, t in start.items()}
        if k == 2:
            trained["w"][:50] += 4e3 * torch.randn(50)  # pushes the first block over 2^53: split words
            trained["b"][1] = math.nan
        updates.append((n, {"delta": Difference(trained, start, ("w", "b"))}))
    sums = []
    for kernel in (TorchKernel(), compiled):
        monkeypatch.setattr(aggregation, "kernel_for", lambda device, kernel=kernel: kernel)
        sums.append(summed([(update, n) for n, update in updates], [[0, 1, 2, 3]]))
    first, second = sums
    assert first.high is not None and math.isinf(first.bounds[0]) and first.bounds == second.bounds
    for name in ("low", "high", "invalid"):
        assert torch.equal(getattr(first, name), getattr(second, name))


def test_the_library_is_built_once_and_then_found(tmp_path, monkeypatch):
    first = build(COMPILER, tmp_path)
    assert first.exists() and first.parent == tmp_path
    monkeypatch.setattr(exact_sum_kernel.subprocess, "run", lambda *a, **k: pytest.fail("compiled again"))
    assert build(COMPILER, tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary files left behind


def test_a_compiler_that_refuses_tuning_flags_still_builds_the_loops(tmp_path):
    """-march=native is tried first; a compiler that rejects it gets the portable flags."""
    picky = tmp_path / "picky-cc"
    picky.write_text('#!/bin/sh\nfor f in "$@"; do [ "$f" = -march=native ] && exit 3; done\n'
                     f'exec {COMPILER[0]} "$@"\n')
    picky.chmod(picky.stat().st_mode | stat.S_IEXEC)
    library = build([str(picky)], tmp_path / "cache")
    assert library.exists()
    import ctypes

    kernel = CompiledKernel(ctypes.CDLL(str(library)))
    x = torch.empty(3)
    assert kernel.quantize(x, [(0, torch.tensor([0.5, 1.5, -2.5]) * 2.0 ** -40, None)]) == (2.0, False)
    assert x.tolist() == [0.0, 2.0, -2.0]


def test_without_a_compiler_the_sum_runs_on_torch_ops_and_says_so(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("FEDPARA_KERNEL_CACHE", str(tmp_path / "cache"))
    cpu_kernel.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="runner.engine.exact_sum_kernel"):
            kernel = cpu_kernel()
        assert isinstance(kernel, TorchKernel)
        assert "no-such-cc" in caplog.text and "torch ops" in caplog.text
        total = WeightedSum()
        total.add(2.0, {"delta": {"w": torch.tensor([1.0, -3.0])}}, 0.0)
        assert total.mean()["delta"]["w"].tolist() == [1.0, -3.0]
    finally:
        cpu_kernel.cache_clear()
