"""The cluster path walked against Ray's real autoscaler: ``runner.local_cluster`` starts cluster.yaml's cluster
on this machine with no worker node up, and a small GPU sweep goes through the Jobs API as the README says.

From zero worker nodes: a trial that no node type can hold is refused before anything launches, naming the
field; the dry run accepts the GPU sweep (its GPU nodes are not up yet, but the autoscaler may launch them);
the sweep's job makes the autoscaler launch ``gpu_worker`` nodes and its workers run there (on the CPU: the
GPUs are logical); its rows equal a local run's; and the idle worker nodes are removed afterwards.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from tiny_sweep import spy_on_tuners

from runner import sweep as sweep_cli
from runner.local_cluster.config import LocalSizes
from runner.local_cluster.processes import LocalCluster, cluster_processes, start, stop

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).parent / "ray")
HEAD_ID = "f" * 51 + "00000"  # Ray's fake multi-node provider numbers its nodes: the head, then 00001, 00002, ...

# two trials of two workers on half a GPU each: each trial fills the one GPU of a gpu_worker node (4 CPU, 1 GPU)
SWEEP = """
name: gpu-tiny
description: two tiny trials, each filling one GPU node
base:
  data: {dataset: synthetic, num_clients: 4, clients_per_round: 2}
  model: {arch: fc2, parameterization: fedpara, gamma: 0.5}
  train: {rounds: 1, local_epochs: 1, batch_size: 64, lr: 0.05}
  resources: {num_workers: 2, cpus_per_worker: 0.5, gpus_per_worker: 0.5, driver_cpus: 0.5}
  logging: {checkpoint_every: 1, wandb: disabled}
grid:
  seed: [0, 1]
"""
# what may differ between the cluster's rows and the local run's: timings, the code version, the results path
WHERE_AND_WHEN = {"round_seconds", "elapsed_seconds", "worker_seconds", "worker_peak_mib", "code_commit", "code_dirty",
                  "logging.results_dir"}
STATE = """
import json, sys
from ray.util.state import list_actors, list_nodes
nodes = [{"id": n.node_id, "state": n.state, "resources": n.resources_total}
         for n in list_nodes(address=sys.argv[1], detail=True, limit=1000)]
actors = [{"class": a.class_name, "node": a.node_id, "repr": a.repr_name}
          for a in list_actors(address=sys.argv[1], detail=True, limit=10000)]
print(json.dumps({"nodes": nodes, "actors": actors}))
"""


@pytest.fixture
def local_cluster():
    """cluster.yaml's cluster, at most 2 worker nodes, idle ones removed after 15 s; stopped whatever happens."""
    temp_dir = Path(tempfile.mkdtemp(prefix="fpa-", dir="/tmp"))  # short: Ray's socket paths must stay short
    # token authentication as Ray 2.60 turns it on where ~/.ray/auth_token exists: one token for head and CLI
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    try:
        cluster = start(temp_dir, LocalSizes(max_workers=2, idle_timeout_minutes=0.25, object_store_mb=80), env=env,
                        port=0, dashboard_port=0)
        yield cluster, env
    finally:
        stop(temp_dir)
        assert cluster_processes(temp_dir) == []


def submit(cluster: LocalCluster, env: dict[str, str], job: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``ray job submit`` as the README writes it, waiting for the job; retried while the job server comes up."""
    runtime_env = json.dumps({"env_vars": {"FEDPARA_CODE_VERSION": "abc1234", "WANDB_MODE": "disabled"}})
    command = [RAY, "job", "submit", "--address", cluster.dashboard_url, "--submission-id", job, "--working-dir",
               str(ROOT), "--runtime-env-json", runtime_env, "--", sys.executable, "-m", "runner.sweep", *argv]
    deadline = time.monotonic() + 120
    while True:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode == 0 or job in done.stdout or time.monotonic() > deadline:
            return done
        time.sleep(2)


def autoscaler_events(cluster: LocalCluster, verb: str) -> list[str]:
    """What the autoscaler did (``Adding 1 node(s) of type gpu_worker.``, ``Removing ...``), from its monitor's log."""
    log = Path(cluster.temp_dir) / "session_latest" / "logs" / "monitor.log"
    events = [line.split(":event_summary:", 1)[1] for line in log.read_text().splitlines() if ":event_summary:" in line]
    return [e for e in events if e.startswith(verb)]


def ray_state(cluster: LocalCluster, env: dict[str, str]) -> dict:
    """Ray's own view of the cluster's nodes and actors (dead ones too), from its state API."""
    done = subprocess.run([sys.executable, "-c", STATE, cluster.dashboard_url], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def alive_workers(cluster: LocalCluster, env: dict[str, str]) -> list[str]:
    return [n["id"] for n in ray_state(cluster, env)["nodes"] if n["state"] == "ALIVE" and n["id"] != HEAD_ID]


def test_a_gpu_sweep_through_the_jobs_api_scales_the_clusters_gpu_nodes_up_and_down(local_cluster, tmp_path,
                                                                                     ray_session, monkeypatch):
    cluster, env = local_cluster
    began = time.monotonic()

    def lap(step: str) -> None:  # the walk's time per step, in the test's output (-s)
        print(f"step {step} done at {time.monotonic() - began:.0f} s")
    sweep_file = tmp_path / "gpu-tiny.yaml"
    sweep_file.write_text(SWEEP)
    results = tmp_path / "cluster-results"
    common = [str(sweep_file), "--results", str(results), "--no-plot"]

    # 1. from zero worker nodes: a worker no node type can hold (5 CPU beside a GPU; gpu_worker has 4) is refused
    refused = submit(cluster, env, "too-big", *common, "resources.cpus_per_worker=5")
    assert refused.returncode != 0
    assert ("resources.cpus_per_worker: 5 with resources.gpus_per_worker: 0.5, but no node has both: the GPU nodes "
            "have at most 4 CPU") in refused.stdout + refused.stderr
    assert "2 x (4 CPU, 1 GPU) gpu_worker" in refused.stdout + refused.stderr  # judged by what may launch
    assert autoscaler_events(cluster, "Adding") == [] and alive_workers(cluster, env) == []  # nothing launched

    lap("1.")
    # 2. the dry run accepts the GPU sweep although no GPU node is up: the autoscaler may launch two
    dry = submit(cluster, env, "dry", *common, "--dry-run")
    assert dry.returncode == 0, (dry.stdout + dry.stderr)[-4000:]
    assert "capacity: every trial fits on the cluster" in dry.stdout and "gpu_worker" in dry.stdout
    assert autoscaler_events(cluster, "Adding") == []

    lap("2.")
    # 3. the sweep: the autoscaler launches gpu_worker nodes and every worker of both trials runs on one
    ran = submit(cluster, env, "gpu-tiny-1", *common)
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-4000:]
    launched = autoscaler_events(cluster, "Adding")
    print("autoscaler:", launched)
    assert launched and all(e.endswith("of type gpu_worker.") for e in launched)
    state = ray_state(cluster, env)
    gpu_nodes = {n["id"] for n in state["nodes"] if n["resources"].get("GPU") == 1 and n["resources"]["CPU"] == 4}
    workers = [a for a in state["actors"] if a["class"] == "ClientWorker"]
    assert len(workers) == 4 and {a["node"] for a in workers} <= gpu_nodes and HEAD_ID not in gpu_nodes
    assert all("gpu_ids=0, device=cpu" in a["repr"] for a in workers)  # a logical GPU: the worker uses the CPU

    lap("3.")
    # 4. the rows equal a local run's (this machine, no GPU: the same trials with gpus_per_worker 0)
    spy_on_tuners(monkeypatch)
    local = tmp_path / "local-results"
    assert sweep_cli.main([str(sweep_file), "--results", str(local), "--no-plot", "resources.gpus_per_worker=0"]) == 0
    on_cluster, here = (pd.read_parquet(root / "gpu-tiny" / "rounds").sort_values(["trial", "round"])
                        .reset_index(drop=True) for root in (results, local))
    same = [c for c in here.columns if c not in WHERE_AND_WHEN and not c.startswith("resources.")]
    assert len(on_cluster) == 2 and set(on_cluster["trial"]) == set(here["trial"])
    pd.testing.assert_frame_equal(on_cluster[same], here[same])  # losses, accuracies, bytes: bit for bit

    lap("4.")
    # 5. the idle worker nodes are removed (idle_timeout_minutes 0.25)
    deadline = time.monotonic() + 120
    while alive_workers(cluster, env) and time.monotonic() < deadline:
        time.sleep(2)
    assert alive_workers(cluster, env) == []
    removed = autoscaler_events(cluster, "Removing")
    assert removed and all(e.endswith("of type gpu_worker (idle).") for e in removed)
    lap("5.")
