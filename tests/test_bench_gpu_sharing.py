"""The GPU-sharing bench's report: ratios against the plain loop and fp32, and its two targets judged right.

The bench itself runs on a GPU (bench/gpu_sharing.py); here its table is built from known timings."""

from __future__ import annotations

import argparse

import pytest


@pytest.fixture(scope="module")
def gpu_sharing(bench_module):
    return bench_module("gpu_sharing")


def rows(module, seconds: dict[tuple[str, int], float]):
    return [module.Row(p, "plain loop" if w == 0 else f"{w} workers", w, s, 16, 100.0)
            for (p, w), s in seconds.items()]


def table_rows(table: str) -> dict[tuple[str, str], list[str]]:
    cells = [line.strip("|").split("|") for line in table.splitlines() if line.startswith("| fp32") or
             line.startswith("| bf16")]
    return {(c[0].strip(), c[1].strip()): [x.strip() for x in c[2:]] for c in cells}


def test_report_ratios_and_targets(gpu_sharing):
    args = argparse.Namespace(model="vgg16", clients=16, batch_size=64, rounds=6)
    # fp32: plain 1.6 s/round (10 updates/s); 4 workers 1.0 s (16/s, 1.6x: met). bf16: plain 0.8 s (20/s);
    # 4 workers 0.64 s (25/s, 1.25x: not met); bf16 best 25/s against fp32 best 16/s: 1.5625x (not met)
    measured = rows(gpu_sharing, {("fp32", 0): 1.6, ("fp32", 1): 2.0, ("fp32", 4): 1.0,
                                  ("bf16", 0): 0.8, ("bf16", 1): 1.0, ("bf16", 4): 0.64})
    table = gpu_sharing.report(measured, "NVIDIA H100 80GB HBM3", args)
    cells = table_rows(table)
    assert cells[("fp32", "4 workers")][:5] == ["1/4", "1.000", "16.0", "1.60", ""]
    assert cells[("bf16", "plain loop")][:5] == ["1 (alone)", "0.800", "20.0", "1.00", "2.00"]
    assert cells[("bf16", "4 workers")][3:5] == ["1.25", "1.56"]
    assert "NVIDIA H100 80GB HBM3" in table and "peak CUDA MiB" in table
    assert "target, fp32: 4+ workers ≥ 1.5x the plain loop: best 4 workers at 1.60x: met" in table
    assert "target, bf16: 4+ workers ≥ 1.5x the plain loop: best 4 workers at 1.25x: NOT met" in table
    assert "target: bf16 ≥ 1.8x fp32 (best layout of each): 1.56x: NOT met" in table


def test_bad_arguments_are_refused_by_name(gpu_sharing, capsys):
    with pytest.raises(SystemExit):
        gpu_sharing.parse(["--device", "cpu", "--rounds", "3"])
    assert "--rounds must be at least 4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu_sharing.parse(["--device", "cpu", "--workers", "8", "--clients", "4"])
    assert "--clients 4" in capsys.readouterr().err
