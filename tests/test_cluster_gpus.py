"""Fractional GPUs, proven on logical GPUs: a private one-node Ray cluster that declares 2 GPUs on this
CPU machine, and the sweep command line run against it with ``--address`` (what users run).

What is checked is Ray's own view, from its state API: which placement group, bundle and GPU each
actor holds, and when each placement group could be created.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
from local_cluster import LocalCluster

# a private cluster of its own: with the other cluster walks in `make test-slow`
pytestmark = pytest.mark.slow

SWEEP = """
name: gpus
description: three tiny trials, each with four workers on a quarter of a GPU
base:
  data: {dataset: synthetic, num_clients: 8, clients_per_round: 4}
  model: {arch: fc2, parameterization: fedpara, gamma: 0.5}
  train: {rounds: 1, local_epochs: 1, batch_size: 64, lr: 0.05}
  resources: {num_workers: 4, cpus_per_worker: 0.25, gpus_per_worker: 0.25, driver_cpus: 0.25}
  logging: {checkpoint_every: 1, wandb: disabled}
grid:
  seed: [0, 1, 2]
"""
WORKER_BUNDLE = {"CPU": 0.25, "GPU": 0.25}


@pytest.fixture(scope="module")
def two_gpus():
    cluster = LocalCluster(head={"num_cpus": 4, "num_gpus": 2})
    yield cluster
    cluster.shutdown()


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "gpus.yaml"
    path.write_text(SWEEP)
    return path


def gpu_ids(repr_name: str) -> str:
    """``ClientWorker(<trial>/worker-0, gpu_ids=1, device=cpu)`` -> ``"1"``."""
    match = re.search(r"gpu_ids=([^,]+),", repr_name)
    assert match, repr_name
    return match.group(1)


def created_ns(pg) -> int:
    """When Ray could create the placement group (its request time plus its end-to-end creation latency)."""
    stats = pg.stats
    return int(stats["creation_request_received_ns"]) + 1000 * int(stats["end_to_end_creation_latency_us"])


def test_quarter_gpu_workers_share_one_gpu_two_trials_run_at_once_and_a_third_waits(two_gpus, sweep_file, tmp_path):
    run = two_gpus.run_sweep(str(sweep_file), "--results", str(tmp_path / "results"), "--no-plot")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    rows = pd.read_parquet(tmp_path / "results" / "gpus" / "rounds")  # the sweep finished: no deadlock
    assert sorted(rows.groupby("seed")["round"].max().items()) == [(0, 1), (1, 1), (2, 1)]

    pgs = {pg.placement_group_id: pg for pg in two_gpus.placement_groups()
           if [b["unit_resources"] for b in pg.bundles][2:] == [WORKER_BUNDLE] * 4}
    assert len(pgs) == 3
    head = two_gpus.cluster.head_node.node_id
    for pg in pgs.values():
        assert [b["unit_resources"] for b in pg.bundles][:2] == [{"CPU": 0.1}, {"CPU": 0.25}]
        assert {b["node_id"] for b in pg.bundles} == {head}

    workers = two_gpus.actors("ClientWorker")
    by_trial: dict[str, list] = defaultdict(list)
    for actor in workers:
        by_trial[actor.placement_group_id].append(actor)
    assert sorted(by_trial) == sorted(pgs)
    gpu_of = {}
    for pg_id, actors in by_trial.items():
        assert len(actors) == 4
        bundles = set()
        for actor in actors:
            held = {k: v for k, v in actor.required_resources.items() if k.startswith("GPU_group_") and "_" in k[10:]}
            [(key, amount)] = held.items()  # one bundle's quarter of a GPU: GPU_group_<bundle>_<pg>
            assert amount == 0.25 and key.endswith(pg_id)
            bundles.add(int(key.split("_")[2]))
            assert "device=cpu" in actor.repr_name  # no CUDA here: the worker trains on the CPU
        assert bundles == {2, 3, 4, 5}  # one worker in each worker bundle
        ids = {gpu_ids(actor.repr_name) for actor in actors}
        assert len(ids) == 1 and ids <= {"0", "1"}  # all four on the same single GPU
        gpu_of[pg_id] = ids.pop()

    first, second, third = sorted(pgs.values(), key=created_ns)
    assert first.stats["scheduling_attempt"] == second.stats["scheduling_attempt"] == 1  # placed at once...
    assert gpu_of[first.placement_group_id] != gpu_of[second.placement_group_id]  # ...on the two GPUs
    assert third.stats["scheduling_attempt"] > 1  # the third waited until a trial gave its GPU back
    assert created_ns(third) > max(created_ns(first), created_ns(second))

    logs = two_gpus.worker_logs()
    for actor in workers:  # each worker said once that it got a GPU share but trains on the CPU
        name = re.search(r"ClientWorker\(([^,]+),", actor.repr_name).group(1)
        said = f"{name} was given 0.25 GPU (Ray's GPU ids ['{gpu_of[actor.placement_group_id]}'])"
        assert logs.count(said) == 1, said


def test_impossible_requests_are_refused_before_any_actor_starts(two_gpus, sweep_file, tmp_path):
    before = {a.actor_id for a in two_gpus.actors()}
    too_many = ["resources.num_workers=5", "resources.gpus_per_worker=0.5"]  # 2.5 GPUs of a 2-GPU cluster

    dry = two_gpus.run_sweep(str(sweep_file), *too_many, "--dry-run")
    assert dry.returncode == 2
    assert dry.stderr.startswith("error: resources.num_workers: 5 workers of 0.25 CPU + 0.5 GPU"), dry.stderr
    assert "at most 4 of them fit there (the cluster at" in dry.stderr
    assert "1 x (4 CPU, 2 GPU) alive" in dry.stderr
    assert "5x(0.25C+0.5G)" in dry.stdout  # the grid is still shown

    results = tmp_path / "results"
    real = two_gpus.run_sweep(str(sweep_file), *too_many, "--results", str(results))
    assert real.returncode == 2
    assert "error: resources.num_workers: 5 workers" in real.stderr
    assert {a.actor_id for a in two_gpus.actors()} == before  # no trainable, driver or worker started
    assert not (results / "gpus" / "rounds").exists()
