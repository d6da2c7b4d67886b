"""Which trials a cluster can hold (runner/study/capacity.py): the packing rules Ray applies to a trial's
placement group, where the capacity comes from (this machine, a connected cluster, its autoscaler's node
types), and the sweep's dry run refusing, with the field's name, a trial that could never start."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config

from runner import sweep as sweep_cli
from runner.engine.layout import TrialLayout
from runner.study import capacity
from runner.study.capacity import Capacity, NodeShape, layout_problem
from runner.study.sweep_expand import expand
from runner.study.sweep_file import load_sweep

ROOT = Path(__file__).resolve().parents[2]


def layout(workers: int, cpus: float, gpus: float, driver: float = 0.25) -> TrialLayout:
    return TrialLayout(driver_cpus=driver, worker_cpus=cpus, worker_gpus=gpus, num_workers=workers)


def nodes(*shapes: tuple[float, float, int | None]) -> Capacity:
    return Capacity("the cluster", tuple(NodeShape(f"type{i}", c, g, n) for i, (c, g, n) in enumerate(shapes)))


def test_fractional_workers_are_packed_per_gpu():
    two_gpus = nodes((4, 2, 1))
    assert layout_problem(layout(4, 0.25, 0.25), two_gpus) is None
    assert layout_problem(layout(8, 0.25, 0.25), two_gpus) is None  # 8 quarters on 2 GPUs, 2.35 CPU
    assert layout_problem(layout(9, 0.25, 0.25), two_gpus).startswith(
        "resources.num_workers: 9 workers of 0.25 CPU + 0.25 GPU")
    # a fraction is taken from one GPU: 0.4 + 0.4 fit on a GPU, a third does not; 2 GPUs hold 4, not 5
    assert layout_problem(layout(4, 0.5, 0.4), nodes((8, 2, 1))) is None
    assert "at most 4 of them fit there" in layout_problem(layout(5, 0.5, 0.4), nodes((8, 2, 1)))
    assert capacity.workers_on(8, 2, 0.5, 0.4) == 4 and capacity.workers_on(8, 2, 0.5, 1 / 3) == 6


def test_a_placement_group_may_spread_over_nodes():
    assert layout_problem(layout(4, 1, 0), nodes((4, 0, 1))) is not None  # 4.35 CPU on one 4-CPU node
    assert layout_problem(layout(4, 1, 0), nodes((4, 0, 2))) is None  # PACK is soft: bundles spread
    # workers fill the GPU nodes; the trial process and the Driver need a CPU elsewhere
    gpu_nodes = (1, 1, 2)
    assert layout_problem(layout(2, 1, 1), nodes((1, 0, 1), gpu_nodes)) is None
    problem = layout_problem(layout(2, 1, 1), nodes((0, 0, 1), gpu_nodes))
    assert problem.startswith("resources.num_workers: 2 workers of 1 CPU + 1 GPU next to the driver (0.25 CPU)")
    assert "at most 1 of them fit there (the cluster: 1 x (0 CPU, 0 GPU) type0; 2 x (1 CPU, 1 GPU) type1)" in problem


def test_a_bundle_that_fits_no_node_names_its_field():
    cpu_only, gpu = nodes((2, 0, 1)), nodes((4, 0, 1), (2, 1, 3))
    assert layout_problem(layout(1, 0.5, 0.25), cpu_only) == (
        "resources.gpus_per_worker: 0.25, but no node has a GPU (the cluster: 1 x (2 CPU, 0 GPU) type0)")
    assert layout_problem(layout(1, 3, 0), cpu_only).startswith(
        "resources.cpus_per_worker: 3, but the largest node has 2 CPU")
    assert layout_problem(layout(1, 0.5, 0, driver=2.5), cpu_only).startswith(
        "resources.driver_cpus: 2.5, but the largest node has 2 CPU")
    assert layout_problem(layout(1, 3, 0.5), gpu).startswith(
        "resources.cpus_per_worker: 3 with resources.gpus_per_worker: 0.5, but no node has both: "
        "the GPU nodes have at most 2 CPU")


def autoscaling_config() -> dict:
    """cluster.yaml as `ray up` writes it to the head's ~/ray_bootstrap_config.yaml (Ray's defaults filled in)."""
    return prepare_config(copy.deepcopy(yaml.safe_load((ROOT / "cluster.yaml").read_text())))


def test_an_autoscaling_cluster_is_judged_by_the_nodes_it_may_launch():
    types, open_ended = capacity.bootstrap_node_types(autoscaling_config())
    assert (types, open_ended) == ([NodeShape("gpu_worker", 4, 1, 8)], False)
    head_only = (NodeShape("alive", 6, 0, 1),)  # no GPU node is up yet
    trials = expand(load_sweep(ROOT / "sweeps" / "fig4.yaml"))
    with pytest.raises(capacity.ConfigError, match=r"resources\.gpus_per_worker: 0\.25, but no node has a GPU"):
        capacity.check_trials(trials, Capacity("the cluster", head_only))
    capacity.check_trials(trials, Capacity("the cluster", (*head_only, *types)))  # the GPU nodes may come
    # 9 workers on quarter GPUs spread over 3 of the 8 GPU nodes; 40 would need 10 of them
    assert layout_problem(layout(9, 0.75, 0.25, 0.5), Capacity("c", (*head_only, *types))) is None
    assert "at most 32 of them fit there" in layout_problem(layout(40, 0.75, 0.25, 0.5),
                                                            Capacity("c", (*head_only, *types)))

    sized_at_launch = {"head_node_type": "head", "max_workers": 4, "available_node_types": {
        "head": {"resources": {"CPU": 2}}, "gpu": {"node_config": {}, "min_workers": 0}}}
    assert capacity.bootstrap_node_types(sized_at_launch) == ([], True)  # unknown size: nothing is refused
    assert layout_problem(layout(64, 8, 1), Capacity("c", head_only, open_ended=True)) is None
    # node groups a platform reports to the GCS; max_count -1 means no limit
    groups, _ = capacity._node_groups([("gpu", {"CPU": 8.0, "GPU": 1.0}, -1), ("off", {"CPU": 1.0}, 0)])
    assert groups == [NodeShape("gpu", 8, 1, None)]


def test_the_clusters_max_workers_caps_every_node_type():
    """Ray's autoscaler launches no more worker nodes in all than the cluster's max_workers, whatever a type allows:
    a trial that needs more GPU nodes than that would wait for ever, so it is refused."""
    config = autoscaling_config()
    config["max_workers"] = 1  # gpu_worker keeps its own max_workers: 8
    types, _ = capacity.bootstrap_node_types(config)
    assert types == [NodeShape("gpu_worker", 4, 1, 1)]
    offered = Capacity("c", (NodeShape("alive", 6, 0, 1), *types))
    assert layout_problem(layout(4, 0.75, 0.25, 0.5), offered) is None  # one g5.xlarge
    assert "at most 4 of them fit there" in layout_problem(layout(5, 0.75, 0.25, 0.5), offered)  # two of them


def test_the_autoscaler_config_is_the_one_its_monitor_reads(tmp_path, monkeypatch):
    """A head started with `ray start --head --autoscaling-config=<file>` (runner.local_cluster, or by hand) has
    no ~/ray_bootstrap_config.yaml: the check reads the file the autoscaler's monitor was given."""
    monitor = ["/venv/bin/python", "-u", "/venv/ray/autoscaler/_private/monitor.py", "--logs-dir=/tmp/x/logs",
               "--gcs-address=10.0.0.5:6380", f"--autoscaling-config={tmp_path / 'autoscaling.yaml'}"]
    other = [*monitor[:4], "--gcs-address=10.0.0.5:6379", "--autoscaling-config=/elsewhere.yaml"]
    plain = [*monitor[:4], "--gcs-address=10.0.0.6:6379"]  # a Ray without an autoscaler config
    lines = [["bash"], other, monitor, plain]
    assert capacity.monitor_config_path("10.0.0.5:6380", lines) == tmp_path / "autoscaling.yaml"
    assert capacity.monitor_config_path("10.0.0.6:6379", lines) is None
    assert capacity.monitor_config_path("10.0.0.7:6379", lines) is None

    (tmp_path / "autoscaling.yaml").write_text(yaml.safe_dump(autoscaling_config()))
    monkeypatch.setattr(capacity, "BOOTSTRAP_CONFIG", tmp_path / "missing.yaml")
    monkeypatch.setattr(capacity, "_process_command_lines", lambda: lines)
    monkeypatch.setattr(capacity, "_gcs_node_groups", lambda: None)
    assert capacity.autoscaler_node_types("10.0.0.5:6380") == ([NodeShape("gpu_worker", 4, 1, 8)], False)
    assert capacity.autoscaler_node_types("10.0.0.6:6379") == ([], False)  # no file: only the alive nodes
    # this machine's own processes are read for real: the test process is among them
    assert any(any("pytest" in a for a in args) for args in capacity._process_command_lines())


def test_the_connected_clusters_capacity_is_its_alive_nodes_and_its_autoscaler(ray_session, tmp_path, monkeypatch):
    monkeypatch.setattr(capacity, "BOOTSTRAP_CONFIG", tmp_path / "missing.yaml")
    assert capacity.connected_cluster().nodes == (NodeShape("alive", 2, 0, 1),)  # the session's 2-CPU Ray
    bootstrap = tmp_path / "ray_bootstrap_config.yaml"
    bootstrap.write_text(yaml.safe_dump(autoscaling_config()))
    monkeypatch.setattr(capacity, "BOOTSTRAP_CONFIG", bootstrap)
    offered = capacity.connected_cluster("auto")
    assert offered.nodes == (NodeShape("alive", 2, 0, 1), NodeShape("gpu_worker", 4, 1, 8))
    assert offered.describe() == "the cluster at auto: 1 x (2 CPU, 0 GPU) alive; 8 x (4 CPU, 1 GPU) gpu_worker"


def test_dry_run_checks_the_trials_against_this_machine(capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # Ray then detects no GPU, whatever the machine has
    here = capacity.this_machine()
    [machine] = here.nodes
    assert machine.gpus == 0 and machine.cpus >= 1

    assert sweep_cli.main(["sweeps/quickstart.yaml", "--dry-run"]) == 0
    assert f"capacity: every trial fits on this machine: 1 x ({machine.cpus:g} CPU, 0 GPU)" in capsys.readouterr().out

    assert sweep_cli.main(["sweeps/quickstart.yaml", "resources.gpus_per_worker=0.25", "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert "1x(0.5C+0.25G)" in captured.out  # the grid is printed, then the refusal
    assert captured.err.startswith("error: resources.gpus_per_worker: 0.25, but no node has a GPU (this machine: "
                                   f"1 x ({machine.cpus:g} CPU, 0 GPU) as Ray detects it; pass --address")
    assert "[trial synthetic-iid-cnn-fedpara-g0.1-fedavg-s0-a509bab4 and 3 more]" in captured.err

    too_many = math.floor(machine.cpus / 0.5) + 1
    assert sweep_cli.main(["sweeps/quickstart.yaml", f"resources.num_workers={too_many}", "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith(f"error: resources.num_workers: {too_many} workers of 0.5 CPU")
