"""The GPU check's arithmetic: how long sweeps/fig4.yaml takes at a measured rate, beside the FLOP limit."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def gpu_check(bench_module):
    return bench_module("gpu_check")


def test_fig4_hours_follow_from_the_best_layouts_client_updates_per_second(gpu_check):
    # 16 clients of 312 images a round: fp32 best 1.0 s a round (4,992 images/s), bf16 best 0.5 s (9,984/s)
    measured = {"images_a_client": 312, "local_epochs": 1, "rows": [
        {"precision": "fp32", "layout": "plain loop", "clients": 16, "seconds": 2.0},
        {"precision": "fp32", "layout": "4 workers", "clients": 16, "seconds": 1.0},
        {"precision": "bf16", "layout": "8 workers", "clients": 16, "seconds": 0.5}]}
    lines = gpu_check.fig4_estimate(measured)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in lines if line.startswith(("| fp32", "| bf16"))}
    # fig4: 10 trials each of 200x16x500x10, 200x16x500x5, 400x8x1000x10, 400x8x1000x5 images = 720 M
    assert rows["fp32"] == ["4 workers", "4,992", "40.1 h", "53.4 min", "2.0 min"]
    assert rows["bf16"] == ["8 workers", "9,984", "20.0 h", "26.7 min", "2.0 min"]
    assert any("about 19.0 TFLOP/s" in line and "8 % of 250 TFLOP/s" in line for line in lines)
