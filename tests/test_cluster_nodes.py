"""Several nodes, and losing one: a private multi-node Ray cluster on this machine (a CPU head and two
GPU nodes with logical GPUs), a small sweep run against it with ``--address``, and a node removed in
the middle of a trial, as when a spot machine is taken away.

Two ways a trial meets a lost node, both ending with exactly the rows of an uninterrupted run:
- the node held only the trial's workers: Ray reschedules their placement-group bundles on another node
  and restarts them there; the Driver restores the trial from its checkpoint and replays the rounds since;
- the node held the whole trial (trial process, Driver and workers): Tune retries the trial
  (``--max-failures``), which resumes from its own checkpoint.

The node is removed while its processes are frozen, so the trial is certainly mid-way when it goes. The
GCS is told to declare a node dead after two missed health checks of 0.5 s (Ray's default is five of 3 s).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import pytest
from local_cluster import FAST_NODE_DEATH, LocalCluster, freeze, kill, rows_written, wait_until

from runner.study.results import MACHINE_COLUMNS
from runner.study.sweep_expand import expand
from runner.study.sweep_file import load_sweep
from runner.study.trial import run_trial

# a private cluster of its own: with the other cluster walks in `make test-slow`
pytestmark = pytest.mark.slow

ROUNDS = 6
SWEEP = f"""
name: nodes
description: one small trial whose two workers fill a GPU node
base:
  data: {{dataset: synthetic, num_clients: 8, clients_per_round: 4}}
  model: {{arch: fc2, parameterization: fedpara, gamma: 0.5}}
  train: {{rounds: {ROUNDS}, local_epochs: 1, batch_size: 32, lr: 0.05}}
  resources: {{num_workers: 2, cpus_per_worker: 1, gpus_per_worker: 0.5, driver_cpus: 0.25}}
  logging: {{checkpoint_every: 2, wandb: disabled}}
grid:
  seed: [0]
"""


def metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """What the trial learnt: everything but timings and where it ran (as in tests/small_trial.py)."""
    dropped = [*MACHINE_COLUMNS, *(c for c in frame.columns if c.startswith(("logging.", "resources.")))]
    return frame.drop(columns=dropped).sort_values("round").reset_index(drop=True)


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "nodes.yaml"
    path.write_text(SWEEP)
    return path


@pytest.fixture(scope="module")
def reference(sweep_file, tmp_path_factory, ray_session) -> pd.DataFrame:
    """The same trial uninterrupted, on the test session's local Ray (one CPU worker: the count of workers
    and the device change nothing in what a trial learns)."""
    root = tmp_path_factory.mktemp("reference")
    cpu_only = {"resources.num_workers": 1, "resources.cpus_per_worker": 0.5, "resources.gpus_per_worker": 0}
    [trial] = expand(load_sweep(sweep_file), cpu_only, results_root=root)
    return metrics(run_trial(trial))


@pytest.fixture(scope="module")
def cluster(reference):  # the reference first: the session's local Ray is started before this cluster
    cluster = LocalCluster(head={"num_cpus": 1}, system_config=FAST_NODE_DEATH)
    cluster.add_node("gpu-a", num_cpus=2, num_gpus=1)
    cluster.add_node("gpu-b", num_cpus=2, num_gpus=1)
    yield cluster
    cluster.shutdown()


def gpu_nodes(cluster: LocalCluster) -> int:
    return sum(1 for n in cluster.alive_nodes() if n.resources_total.get("GPU"))


def ensure_two_gpu_nodes(cluster: LocalCluster) -> None:
    """A node lost by an earlier test is replaced, as the autoscaler would."""
    while gpu_nodes(cluster) < 2:
        cluster.add_node(f"gpu-{len(cluster.names)}", num_cpus=2, num_gpus=1)


def alive(cluster: LocalCluster) -> list:
    return [a for a in cluster.actors() if a.state == "ALIVE"]


def run_and_remove(cluster: LocalCluster, sweep_file: Path, results: Path, log: Path, victim_of, *args: str,
                   replace: bool = False):
    """Start the sweep, and once a few rows are written, freeze and remove the node ``victim_of(actors)``
    names (and add a new GPU node in its place if ``replace``, as an autoscaler would); returns (the
    sweep's exit code, rows written before the removal, the removed node's id, the ids of the actors that
    existed before)."""
    before = {a.actor_id for a in cluster.actors()}
    sweep = cluster.start_sweep(str(sweep_file), "--results", str(results), "--no-plot", *args, log=log)
    try:
        wait_until(lambda: rows_written(results) >= 2, sweep, "the second row")
        actors = alive(cluster)
        node_id = victim_of(actors)
        frozen = [a.pid for a in actors if a.node_id == node_id]
        freeze(frozen)
        written = rows_written(results)
        removed_at = time.time()
        cluster.remove_node(cluster.node(node_id))
        kill(frozen)
        if replace:
            cluster.add_node(f"gpu-{len(cluster.names)}", num_cpus=2, num_gpus=1)
        code = sweep.wait(timeout=300)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    print(f"node removed at {time.strftime('%H:%M:%S', time.localtime(removed_at))}.{int(removed_at % 1 * 1000):03d}")
    return code, written, node_id, before


def started_since(cluster: LocalCluster, before: set[str], class_name: str) -> list:
    return [a for a in cluster.actors(class_name) if a.actor_id not in before]


def test_a_sweep_spreads_over_nodes_and_survives_losing_its_workers_node(cluster, sweep_file, reference, tmp_path):
    ensure_two_gpu_nodes(cluster)
    head = cluster.cluster.head_node.node_id

    def workers_node(actors):
        [node] = {a.node_id for a in actors if a.class_name == "ClientWorker"}
        trial_processes = {a.node_id for a in actors if a.class_name in ("Driver", "ImplicitFunc")}
        assert node != head and node not in trial_processes  # PACK spread the trial: the workers fill a GPU node
        return node

    log = tmp_path / "sweep.log"
    code, written, lost, before = run_and_remove(cluster, sweep_file, tmp_path / "results", log, workers_node,
                                                 replace=True)
    out = log.read_text()
    assert code == 0, out[-4000:]
    assert written < ROUNDS  # the node went mid-trial
    rows = metrics(pd.read_parquet(tmp_path / "results" / "nodes" / "rounds"))
    pd.testing.assert_frame_equal(rows, reference)

    workers = started_since(cluster, before, "ClientWorker")
    [pg] = {a.placement_group_id for a in workers}  # the same trial, the same placement group...
    assert len(workers) == 2 and {a.num_restarts for a in workers} == {1}  # ...each worker restarted once...
    assert all(a.node_id not in (lost, head) for a in workers)  # ...on the other GPU node
    [bundles] = [p.bundles for p in cluster.placement_groups() if p.placement_group_id == pg]
    assert {b["node_id"] for b in bundles[2:]} == {a.node_id for a in workers}  # Ray moved the bundles there
    assert "restoring and redoing it" in out and "Trial task failed" not in out  # recovered inside the trial
    [trainable] = started_since(cluster, before, "ImplicitFunc")
    assert trainable.num_restarts == 0 and trainable.placement_group_id == pg


def test_losing_the_node_that_holds_a_whole_trial_retries_it_from_its_checkpoint(cluster, sweep_file, reference,
                                                                                  tmp_path):
    ensure_two_gpu_nodes(cluster)
    head = cluster.cluster.head_node.node_id
    whole = ["resources.num_workers=1", "resources.cpus_per_worker=0.5"]  # 0.85 CPU + 0.5 GPU: one GPU node

    def trial_node(actors):
        mine = [a for a in actors if a.class_name in ("ClientWorker", "Driver", "ImplicitFunc")]
        [node] = {a.node_id for a in mine}
        assert node != head and len(mine) == 3
        return node

    log = tmp_path / "sweep.log"
    code, written, lost, before = run_and_remove(cluster, sweep_file, tmp_path / "results", log, trial_node,
                                                 "--max-failures", "1", *whole)
    out = log.read_text()
    assert code == 0, out[-4000:]
    assert written < ROUNDS
    rows = metrics(pd.read_parquet(tmp_path / "results" / "nodes" / "rounds"))
    pd.testing.assert_frame_equal(rows, reference)

    failed = re.search(r"(\d\d:\d\d:\d\d,\d{3})\s+ERROR tune_controller.py:\d+ -- Trial task failed", out)
    assert failed, out[-4000:]  # Tune saw the trial fail once and retried it
    print(f"Tune saw the trial fail at {failed.group(1)}")
    trainables = started_since(cluster, before, "ImplicitFunc")
    assert len(trainables) == 2 and len({a.placement_group_id for a in trainables}) == 2  # a new placement group
    first, again = sorted(trainables, key=lambda a: a.node_id != lost)
    assert first.node_id == lost and again.node_id not in (lost, head)
    workers = started_since(cluster, before, "ClientWorker")
    assert sorted(a.node_id == lost for a in workers) == [False, True]  # one worker per attempt
