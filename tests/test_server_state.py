"""SCAFFOLD's c and FedDyn's h stay the sample-weighted average of all clients' states, through whole trials.

The trial runs on Ray with a Dirichlet split (clients of very different sizes) and 3 of 8 clients a round; its
last checkpoint holds the server state, and its pieces every visited client's state (the others are still at zero).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from partitions import load_dataset, partition_clients
from runner.algorithms import Participation
from runner.config import TrialConfig
from runner.engine.checkpoint import CheckpointFile, trial_dir
from runner.engine.wire import from_wire
from runner.study.trial import run_trial

ROUNDS = 8  # the average holds after any round; at this seed 8 rounds of 3 clients have visited all 8


def trial(tmp_path: Path, algorithm: dict, partition: str = "dirichlet") -> TrialConfig:
    return TrialConfig.from_dict({
        "data": {"dataset": "synthetic", "partition": partition, "alpha": 0.3, "num_clients": 8,
                 "clients_per_round": 3},
        "model": {"arch": "fc2", "parameterization": "fedpara", "gamma": 0.5},
        "train": {"rounds": ROUNDS, "local_epochs": 1, "batch_size": 64, "lr": 0.05, "eval_every": ROUNDS},
        "algorithm": algorithm,
        "resources": {"num_workers": 2, "cpus_per_worker": 0.5, "driver_cpus": 0.25},
        "logging": {"results_dir": str(tmp_path), "checkpoint_every": ROUNDS, "wandb": "disabled"},
        "seed": 1,
    })


def client_sizes(cfg: TrialConfig) -> list[int]:
    d = cfg.data
    partition = partition_clients(load_dataset(d.dataset, d.root, seed=cfg.seed), d.partition, d.num_clients,
                                  alpha=d.alpha, seed=cfg.seed)
    return [len(part) for part in partition.train]


def server_and_client_average(cfg: TrialConfig) -> tuple[dict, dict, list[int]]:
    """The checkpoint's server state and Σ_k (n_k/n)·state_k over all clients (never-sampled ones are zero)."""
    state = CheckpointFile(trial_dir(cfg)).load()
    assert state is not None and state["round"] == ROUNDS
    sizes = client_sizes(cfg)
    clients = {k: from_wire(s)["algo"] for k, s in CheckpointFile(trial_dir(cfg)).client_states(state).items()}
    total = sum(sizes)
    average = {n: sum(sizes[k] / total * c[n].double() for k, c in clients.items()) for n in state["server"]}
    return state["server"], average, sizes


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("algorithm", [{"name": "scaffold"}, {"name": "feddyn", "alpha": 0.1}])
def test_the_server_state_is_the_weighted_average_of_all_clients_states(tmp_path, algorithm):
    cfg = trial(tmp_path, algorithm)
    run_trial(cfg)
    server, average, sizes = server_and_client_average(cfg)
    assert max(sizes) > 2 * min(sizes)  # the split is far from equal: |S|/N would be the wrong share
    for n, c in server.items():
        scale = average[n].abs().max().item()
        assert scale > 1e-4  # a state that moved, not zeros equal to zeros
        assert torch.allclose(c.double(), average[n], rtol=1e-4, atol=1e-5 * scale), n


def test_the_share_of_a_round_is_its_clients_samples_over_all_samples():
    """IID with equal clients: the same number as |S|/N, to the last bit (the IID rows do not move)."""
    assert Participation(16 * 500, 100 * 500).share == 16 / 100
    assert Participation(3 * 625, 8 * 625).share == 3 / 8
    assert Participation(300, 1000).share == 0.3
