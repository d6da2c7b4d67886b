"""The local autoscaling cluster's config, derived from cluster.yaml (runner/local_cluster/config.py), checked
without starting anything: same node types, CPUs, GPUs and min workers, Ray's schema, and the capacity check
reading it as it reads a `ray up` cluster's."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import ray._private.parameter as ray_parameter
from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID, FakeMultiNodeProvider
from ray.autoscaler._private.loader import load_function_or_class
from ray.autoscaler._private.util import validate_config
from ray.autoscaler.tags import TAG_RAY_USER_NODE_TYPE

from runner.config import ConfigError
from runner.local_cluster.config import LocalSizes, head_resources, load_cluster_yaml, local_autoscaling_config
from runner.local_cluster.processes import (
    STATE_FILE,
    LocalCluster,
    cluster_processes,
    cluster_session,
    process_table,
    stop,
)
from runner.local_cluster.provider import own_runtime_env_dir
from runner.study import capacity
from runner.study.capacity import Capacity, NodeShape
from runner.study.sweep_expand import expand
from runner.study.sweep_file import load_sweep

ROOT = Path(__file__).resolve().parents[1]
GCS = "10.1.2.3:6390"


def derived(**sizes) -> dict:
    return local_autoscaling_config(load_cluster_yaml(), GCS, LocalSizes(**sizes))


def test_node_types_are_cluster_yamls_with_logical_cpus_and_gpus():
    cluster, config = load_cluster_yaml(), derived()
    assert config["head_node_type"] == cluster["head_node_type"] == "head"
    assert set(config["available_node_types"]) == set(cluster["available_node_types"]) == {"head", "gpu_worker"}
    for name, spec in cluster["available_node_types"].items():
        local = config["available_node_types"][name]["resources"]
        assert {k: local[k] for k in ("CPU", "GPU") if k in local} == spec["resources"]  # {"CPU": 4, "GPU": 1}
        assert local["object_store_memory"] == 100 * 2**20
    worker = config["available_node_types"]["gpu_worker"]
    assert (worker["min_workers"], worker["max_workers"], config["max_workers"]) == (0, 2, 2)  # 8 capped at 2
    assert config["idle_timeout_minutes"] == 1.0 and config["upscaling_speed"] == cluster["upscaling_speed"]
    assert head_resources(config) == {"CPU": 6, "object_store_memory": 100 * 2**20}
    validate_config(config)  # Ray's own schema, as the monitor checks it


def test_sizes_change_only_what_they_name():
    small = derived(max_workers=1, idle_timeout_minutes=0.25, object_store_mb=80)
    assert small["available_node_types"]["gpu_worker"]["max_workers"] == small["max_workers"] == 1
    assert small["idle_timeout_minutes"] == 0.25
    assert small["available_node_types"]["gpu_worker"]["resources"]["CPU"] == 4
    # a cap above cluster.yaml's own max_workers keeps cluster.yaml's
    assert derived(max_workers=50)["available_node_types"]["gpu_worker"]["max_workers"] == 8
    with pytest.raises(ValueError, match="--max-workers: must be >= 0, got -1"):
        LocalSizes(max_workers=-1)
    with pytest.raises(ValueError, match="--object-store-mb: Ray needs at least 75, got 10"):
        LocalSizes(object_store_mb=10)


def test_the_provider_joins_the_heads_gcs_and_keeps_the_head_types_name(monkeypatch):
    provider_config = derived()["provider"]
    assert provider_config["gcs_address"] == GCS and provider_config["use_node_id_as_ip"] is True
    provider_class = load_function_or_class(provider_config["module"])  # what the monitor loads
    assert issubclass(provider_class, FakeMultiNodeProvider)
    monkeypatch.setenv("RAY_FAKE_CLUSTER", "1")  # set for the head; the provider refuses to start without it
    provider = provider_class(provider_config, "fedpara-local")
    assert provider.node_tags(FAKE_HEAD_NODE_ID)[TAG_RAY_USER_NODE_TYPE] == "head"
    assert provider.non_terminated_nodes({}) == [FAKE_HEAD_NODE_ID]  # no worker node until the autoscaler asks
    # each worker node unpacks jobs' working directories into a directory of its own, as on a disk of its own
    with own_runtime_env_dir("runtime_resources_node3"):
        assert ray_parameter.RayParams().runtime_env_dir_name == "runtime_resources_node3"
    assert ray_parameter.RayParams().runtime_env_dir_name == "runtime_resources"


def test_the_capacity_check_reads_the_local_config_as_the_autoscaler_does():
    types, open_ended = capacity.bootstrap_node_types(derived())
    assert (types, open_ended) == ([NodeShape("gpu_worker", 4, 1, 2)], False)
    from_zero = Capacity("the local cluster", (NodeShape("alive", 6, 0, 1), *types))
    capacity.check_trials(expand(load_sweep(ROOT / "sweeps" / "fig4.yaml")), from_zero)  # as on AWS
    [trial] = expand(load_sweep(ROOT / "sweeps" / "quickstart.yaml"))[:1]
    too_big = replace(trial, resources=replace(trial.resources, num_workers=1, cpus_per_worker=5,
                                               gpus_per_worker=0.5, driver_cpus=0.5))
    with pytest.raises(ConfigError, match=r"resources\.cpus_per_worker: 5 with resources\.gpus_per_worker: 0\.5, "
                                          r"but no node has both: the GPU nodes have at most 4 CPU"):
        capacity.check_trials([too_big], from_zero)


def test_down_stops_the_clusters_session_and_nothing_else(tmp_path):
    """Processes of the cluster's session are found though their command lines do not name its directory (Ray's
    agents rename themselves); a session in which no process names the directory is someone else's."""
    assert (os.getpid(), os.getsid(0)) in {(pid, sid) for pid, sid, _ in process_table()}
    assert cluster_processes(tmp_path, cluster_session(tmp_path)) == []  # nothing runs under a fresh directory
    # a "head" naming the directory, with two children in its session that do not
    head = subprocess.Popen(["sh", "-c", "sleep 61 & sleep 62 & wait", "head", str(tmp_path)], start_new_session=True)
    bystander = subprocess.Popen(["sleep", "63"])  # in this test's session
    try:
        write_state(tmp_path, session_id=head.pid)
        deadline = time.monotonic() + 30
        while len(cluster_processes(tmp_path, cluster_session(tmp_path))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        found = cluster_processes(tmp_path, cluster_session(tmp_path))
        assert head.pid in found and len(found) == 3 and bystander.pid not in found
        write_state(tmp_path, session_id=os.getsid(0))  # a session no process of which names the directory
        assert cluster_processes(tmp_path, cluster_session(tmp_path)) == [head.pid]
        write_state(tmp_path, session_id=head.pid)
        assert stop(tmp_path, grace_s=5, remove=False) == 3
        assert cluster_processes(tmp_path, head.pid) == [] and bystander.poll() is None
    finally:
        head.kill()
        bystander.kill()
        head.wait()
        bystander.wait()


def write_state(temp_dir: Path, session_id: int) -> None:
    cluster = LocalCluster(str(temp_dir), session_id, "127.0.0.1:1", "http://127.0.0.1:1", "-")
    (temp_dir / STATE_FILE).write_text(json.dumps(asdict(cluster)))
