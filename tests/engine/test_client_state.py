"""Client state that grows with the round, not the population: a worker keeps in memory only this round's and
next round's clients, a checkpoint writes only the states that changed, and merged pieces bound what a resume
reads (runner/engine/client_state_store.py, runner/engine/client_state_pieces.py).

The worker is driven in this process (no Ray) round by round as the Driver drives it; the whole-trial resume
runs on the session's Ray.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from runner.config import TrialConfig
from runner.engine.checkpoint import CheckpointFile, trial_dir
from runner.engine.client_state_pieces import add_checkpoint, delta_name, read_piece, referenced, states_in
from runner.engine.client_worker import ClientWorker
from runner.engine.model import initial_model
from runner.engine.planning import client_cost, plan_round
from runner.engine.seeding import sample_clients
from runner.engine.storage import Location
from runner.engine.wire import to_wire

CLIENTS, PER_ROUND, ROUNDS = 40, 4, 8


def config(tmp_path: Path, **logging) -> TrialConfig:
    return TrialConfig.from_dict({
        "data": {"dataset": "synthetic", "num_clients": CLIENTS, "clients_per_round": PER_ROUND},
        "model": {"arch": "fc2", "parameterization": "fedpara", "gamma": 0.1},
        "train": {"rounds": ROUNDS, "local_epochs": 1, "batch_size": 64, "lr": 0.05},
        "algorithm": {"name": "scaffold"},
        "resources": {"num_workers": 1, "cpus_per_worker": 1, "driver_cpus": 0.25},
        "logging": {"results_dir": str(tmp_path), "checkpoint_every": 1, "wandb": "disabled", **logging},
        "seed": 5})


@pytest.fixture
def worker(tmp_path):
    """A client worker in this process, set up as the Driver sets it up (its thread count put back after)."""
    threads = torch.get_num_threads()
    cfg = config(tmp_path)
    made = ClientWorker(cfg, 0, 1)
    algorithm = cfg.algorithm.build()
    _, initial_global, initial_local = initial_model(cfg, algorithm)
    made.setup(initial_local, initial_global)
    made.payload = to_wire(algorithm.broadcast(initial_global, algorithm.init_server_state(initial_global)))
    yield made
    made.store.close()
    torch.set_num_threads(threads)


def plans(cfg: TrialConfig, sizes: list[int]) -> list[list[int]]:
    """Each round's clients of a one-worker trial, as the Driver plans them."""
    costs = [client_cost(n, cfg.train.batch_size, cfg.train.local_epochs) for n in sizes]
    return [plan_round(sample_clients(cfg.seed, r, CLIENTS, PER_ROUND), costs, {}, 1)[0]
            for r in range(1, ROUNDS + 1)]


def all_states(made: ClientWorker) -> dict[int, dict]:
    return {k: to_wire(made.store.read_required(k)) for k in made.store.clients()}


def test_a_worker_holds_this_and_next_rounds_clients_in_memory_and_writes_only_changed_ones(worker, tmp_path):
    rounds = plans(worker.cfg, worker.client_sizes())
    pieces = Location(tmp_path / "pieces")
    state_bytes = sum(t.numel() * t.element_size() for t in worker._fresh_state()["algo"].values())
    trained_since_save: set[int] = set()
    for r, clients in enumerate(rounds, start=1):
        upcoming = rounds[r] if r < ROUNDS else []
        visited = set(worker.store.clients())
        worker.train(r, clients, upcoming, worker.payload, 0.05)
        worker.store.settle()  # the moves of this round ran beside its training
        bound = len(set(clients) | set(upcoming))
        assert len(worker.store.resident) <= bound and set(worker.store.resident) <= set(clients) | set(upcoming)
        assert set(upcoming) & visited <= set(worker.store.resident)  # next round's states already read in
        trained_since_save |= set(clients)
        if r % 2 == 0 or r == 3:  # checkpoints one or two rounds apart
            _, (name, count, size) = worker.save_client_states(str(pieces), r)
            assert name == delta_name(r, 0) and count == len(trained_since_save)
            assert set(read_piece(pieces / name, tmp_path)) == trained_since_save
            assert count * state_bytes <= size <= count * state_bytes + 4096 * (count + 1)  # the states + a header
            trained_since_save = set()
    assert len(worker.store) > 2 * worker.store.peak_resident  # the bound was tight: most states were on disk
    assert worker.store.peak_resident <= max(len(set(a) | set(b)) for a, b in zip(rounds, [*rounds[1:], []]))
    assert set(worker.store.clients()) - set(worker.store.resident) <= worker.store.on_disk
    assert sorted(int(p.stem) for p in worker.store.directory.glob("*.pt")) == sorted(worker.store.on_disk)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_merged_pieces_bound_the_files_a_resume_reads_and_give_back_the_same_states(worker, tmp_path, request,
                                                                                      where):
    results = tmp_path / "results" if where == "local" else f"{request.getfixturevalue('s3_bucket')}/{tmp_path.name}"
    pieces = Location(results) / "pieces"
    rounds = plans(worker.cfg, worker.client_sizes())
    runs: list = []
    most_files = 0
    for r, clients in enumerate(rounds, start=1):
        worker.train(r, clients, rounds[r] if r < ROUNDS else [], worker.payload, 0.05)
        _, (name, _, _) = worker.save_client_states(str(pieces), r)
        runs, _ = add_checkpoint(pieces, runs, [name], r, max_runs=2)
        assert len(runs) <= 2
        most_files = max(most_files, len(referenced(runs)))
    assert most_files <= 2  # one merged file and one checkpoint's delta (one worker), whatever the rounds
    assert any(run["level"] >= 2 for run in runs)  # merges of merges happened

    expected = all_states(worker)
    resumed = ClientWorker(worker.cfg, 0, 1)  # as after a restart (its predecessor's local copies are deleted)
    resumed.setup(worker.initial_local, worker.initial_global)
    resumed.load_client_pieces(str(pieces), runs)
    got = all_states(resumed)
    assert sorted(got) == sorted(expected) and len(got) > 2 * PER_ROUND
    for k in expected:
        for part in expected[k]:
            for n in expected[k][part]:
                assert (got[k][part][n] == expected[k][part][n]).all(), (k, part, n)
    assert dict(states_in(pieces, runs, tmp_path)).keys() == set(expected)
    resumed.store.close()



@pytest.mark.usefixtures("ray_session")
def test_a_trial_resumed_from_merged_pieces_gives_the_rows_of_an_uninterrupted_run(tmp_path):
    """SCAFFOLD on two workers with more clients than either keeps in memory; checkpoints merge into runs. Cyclic
    sampling: 4 new clients every round, so checkpoint 5 holds exactly 20 clients' states."""
    from small_trial import Crash, crash_after, metrics, small

    from runner.study.results import load_rounds
    from runner.study.trial import run_trial

    cfg = small(tmp_path, algorithm={"name": "scaffold"},
                data={"num_clients": 24, "clients_per_round": 4, "client_sampling": "cyclic"},
                train={"rounds": 6}, resources={"num_workers": 2, "cpus_per_worker": 0.5},
                logging={"checkpoint_runs": 2})

    with pytest.raises(Crash):
        run_trial(cfg, report=crash_after(6))
    uninterrupted = load_rounds(tmp_path)
    checkpoints = CheckpointFile(trial_dir(cfg))
    state = checkpoints.load()
    assert state["round"] == 5 and len(state["client_runs"]) <= 2
    assert {p.name for p in Path(str(checkpoints.pieces)).glob("*.pt")} >= referenced(state["client_runs"])
    assert len(checkpoints.client_states(state)) == 20  # more clients than a worker keeps in memory
    resumed = run_trial(cfg)  # round 6 redone from the pieces of checkpoint 5
    assert list(resumed["round"]) == [1, 2, 3, 4, 5, 6]
    pd.testing.assert_frame_equal(metrics(resumed), metrics(uninterrupted))


def test_a_workers_spill_folder_deletes_dead_incarnations_and_leaves_live_ones(tmp_path, monkeypatch):
    """A worker killed before it could delete its folder leaves it behind: the next incarnation of that worker
    on the node deletes it; a folder whose process still runs (the same trial name in another sweep or test
    process) is not touched."""
    import os
    import subprocess
    import sys

    from runner.engine.client_worker import state_directory

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    root = tmp_path / "fedpara-client-state"
    dead = root / f"t-w0-p{int(gone.stdout)}-aaaaaaaaaaaa"
    live = root / f"t-w0-p{os.getppid()}-bbbbbbbbbbbb"
    other_worker = root / f"t-w1-p{int(gone.stdout)}-cccccccccccc"
    for folder in (dead, live, other_worker):
        folder.mkdir(parents=True)
    mine = state_directory("t", 0, "d" * 32)
    assert mine == root / f"t-w0-p{os.getpid()}-dddddddddddd"
    assert not dead.exists() and live.exists() and other_worker.exists()
