"""Validation data: held out of the clients' training samples (seeded), scored with the test set, never trained on."""

from __future__ import annotations

import math

import pytest

from partitions import hold_out, load_dataset, partition_clients
from runner.config import TrialConfig
from runner.study.trial import run_trial


def config(tmp_path, validation_fraction: float, **data) -> TrialConfig:
    return TrialConfig.from_dict({
        "data": {"dataset": "synthetic", "partition": "dirichlet", "num_clients": 10, "clients_per_round": 4,
                 "validation_fraction": validation_fraction, **data},
        "model": {"arch": "fc2", "parameterization": "fedpara", "gamma": 0.5},
        "train": {"rounds": 3, "local_epochs": 1, "batch_size": 64, "lr": 0.05, "eval_every": 3},
        "resources": {"num_workers": 1, "cpus_per_worker": 0.5, "driver_cpus": 0.25},
        "logging": {"results_dir": str(tmp_path), "checkpoint_every": 0, "wandb": "disabled"}, "seed": 2})


def test_a_worker_trains_on_what_is_not_held_out_and_scores_the_rest(tmp_path):
    from runner.engine.client_worker import ClientWorker

    cfg = config(tmp_path, 0.2)
    partition = partition_clients(load_dataset("synthetic", "unused", seed=2), "dirichlet", 10, seed=2)
    kept, held = hold_out(partition.train, 0.2, seed=2)
    worker = ClientWorker(cfg, 0, 1)
    assert worker.client_sizes() == [len(k) for k in kept] and sum(map(len, held)) == 1000  # 20 % of 5000
    validation = worker.eval_batches["validation"]
    assert sum(len(y) for _, y in validation.values()) == 1000
    plain = ClientWorker(config(tmp_path, 0.0), 0, 1)  # without validation every sample trains, as before
    assert plain.client_sizes() == [len(p) for p in partition.train] and not plain.eval_batches["validation"]
    assert "-val0.2-" in cfg.trial_name and "-val" not in config(tmp_path, 0.0).trial_name


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("algorithm", ["fedavg", "pfedpara"])
def test_rows_carry_the_validation_accuracy_on_evaluated_rounds(tmp_path, algorithm):
    extra = {"algorithm": {"name": algorithm}, "model": {"arch": "fc2", "parameterization": algorithm.replace(
        "fedavg", "fedpara"), "gamma": 0.5}}
    raw = config(tmp_path, 0.2).to_dict()
    raw.update(extra)
    rows = run_trial(TrialConfig.from_dict(raw))
    evaluated = rows[rows["test_accuracy"].notna()]
    assert list(evaluated["round"]) == [3] and rows["val_accuracy"].notna().sum() == 1
    val = evaluated["val_accuracy"].iloc[0]
    assert 0 < val < 1 and val != evaluated["test_accuracy"].iloc[0] and evaluated["val_loss"].iloc[0] > 0
    without = run_trial(config(tmp_path, 0.0))
    assert without["val_accuracy"].isna().all() and not math.isnan(without["test_accuracy"].iloc[-1])
