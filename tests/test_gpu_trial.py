"""On a machine with CUDA (the device machine; never in CI): GPU workers give the same rows with one worker or two.

The CPU tests cannot reach what only a GPU worker does: it keeps its partial sum as one block of the whole
buffer, which the driver (on a CPU) merges with blocks of its own size. A model above one CPU block (FC-2:
616 K values against 256 K) and two workers sharing the GPU put that merge on the path of every round.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from small_trial import metrics, small

from runner.study.trial import run_trial

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the device machine)"),
              pytest.mark.usefixtures("ray_session")]


def test_gpu_workers_give_the_same_rows_with_one_worker_or_two(tmp_path):
    sections = {"model": {"arch": "fc2", "parameterization": "original", "gamma": None},
                "data": {"num_clients": 8, "clients_per_round": 5}, "train": {"rounds": 4}}
    one = run_trial(small(tmp_path / "one", resources={"num_workers": 1, "cpus_per_worker": 0.5,
                                                       "gpus_per_worker": 0.25}, **sections))
    two = run_trial(small(tmp_path / "two", resources={"num_workers": 2, "cpus_per_worker": 0.5,
                                                       "gpus_per_worker": 0.25}, **sections))
    pd.testing.assert_frame_equal(metrics(one), metrics(two))
    assert one["test_accuracy"].iloc[-1] > one["test_accuracy"].iloc[0]
