"""Personalized accuracy, defined once: pooled over the clients' test samples, and the mean over clients."""

from __future__ import annotations

import math

import pytest

from runner.config import TrialConfig
from runner.engine.driver import accuracy_columns
from runner.study.trial import run_trial


def test_pooled_and_client_mean_accuracy_by_hand():
    scores = {0: (20.0, 90, 100), 1: (5.0, 1, 10), 2: (3.0, 5, 10)}  # (loss sum, correct, count) per client
    columns = accuracy_columns(scores, per_client=True)
    assert columns["test_accuracy"] == pytest.approx(96 / 120)  # a client counts by its test samples
    assert columns["test_loss"] == pytest.approx(28 / 120)
    assert columns["test_accuracy_client_mean"] == pytest.approx((0.9 + 0.1 + 0.5) / 3)  # each client once
    batches = accuracy_columns({0: (20.0, 90, 100), 1: (5.0, 1, 10)}, per_client=False)  # global test batches
    assert batches["test_accuracy"] == pytest.approx(91 / 110) and math.isnan(batches["test_accuracy_client_mean"])
    with pytest.raises(ValueError, match=r"clients \[1\] have no test samples"):
        accuracy_columns({0: (1.0, 1, 2), 1: (0.0, 0, 0)}, per_client=True)


@pytest.mark.usefixtures("ray_session")
def test_a_personalized_trial_reports_both_and_a_global_one_only_the_pooled(tmp_path):
    def cfg(algorithm: str, parameterization: str) -> TrialConfig:
        return TrialConfig.from_dict({
            "data": {"dataset": "synthetic", "partition": "dirichlet", "alpha": 0.3, "num_clients": 10,
                     "clients_per_round": 10},
            "model": {"arch": "fc2", "parameterization": parameterization, "gamma": 0.5},
            "train": {"rounds": 2, "local_epochs": 1, "batch_size": 64, "lr": 0.05},
            "algorithm": {"name": algorithm},
            "resources": {"num_workers": 1, "cpus_per_worker": 0.5, "driver_cpus": 0.25},
            "logging": {"results_dir": str(tmp_path / algorithm), "checkpoint_every": 0, "wandb": "disabled"}})

    personal = run_trial(cfg("pfedpara", "pfedpara"))
    pooled, mean = personal["test_accuracy"], personal["test_accuracy_client_mean"]
    assert pooled.between(0, 1).all() and mean.between(0, 1).all()
    assert (pooled - mean).abs().max() > 1e-6  # clients of unequal test sizes: the two definitions differ
    global_rows = run_trial(cfg("fedavg", "fedpara"))
    assert global_rows["test_accuracy"].notna().all() and global_rows["test_accuracy_client_mean"].isna().all()
