"""cluster.yaml passes Ray's own cluster-config schema and describes the cluster the sweeps expect."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster.yaml"


def load() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def validated(config: dict) -> dict:
    """What `ray up` does before touching AWS: fill in the provider's defaults, then validate."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_cluster_yaml_passes_rays_validator():
    prepared = validated(load())
    assert prepared["provider"] == {**prepared["provider"], "type": "aws", "region": "us-west-2"}
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_head_is_cpu_and_workers_are_an_autoscaling_gpu_pool():
    config = validated(load())
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"]["CPU"] >= 2
    assert head["max_workers"] == 0  # Ray's fill-in: the head type is never scaled
    [worker] = [t for n, t in types.items() if n != config["head_node_type"]]
    assert worker["resources"]["GPU"] >= 1 and worker["resources"]["CPU"] >= 4
    assert worker["node_config"]["InstanceType"].startswith(("g5.", "p3."))
    assert (worker["min_workers"], worker["max_workers"]) == (0, 8) and config["max_workers"] == 8
    assert config["idle_timeout_minutes"] > 0


def test_a_vgg16_trial_fits_on_one_gpu_worker():
    from runner.study.sweep_expand import expand
    from runner.study.sweep_file import load_sweep

    worker = next(t for n, t in load()["available_node_types"].items() if n != load()["head_node_type"])
    for sweep in ("fig3", "fig4", "table2", "table3"):
        for trial in expand(load_sweep(CLUSTER_YAML.parent / "sweeps" / f"{sweep}.yaml")):
            r = trial.resources
            assert 0.1 + r.driver_cpus + r.num_workers * r.cpus_per_worker <= worker["resources"]["CPU"]
            assert r.num_workers * r.gpus_per_worker <= worker["resources"]["GPU"]


def test_setup_installs_this_project_with_the_local_ray_version():
    config = load()
    assert config["file_mounts"]["~/fedpara-runner"] == "."
    assert config["file_mounts"]["~/fedpara-data"] == "~/fedpara-data"
    commands = "\n".join(config["setup_commands"])
    assert "pip install -q -e ~/fedpara-runner" in commands
    assert f'"ray[default,tune]=={ray.__version__}"' in commands  # `ray up` needs matching versions
    assert "docker" not in config
    assert any("boto3" in c for c in config["head_setup_commands"])


def test_results_need_no_shared_file_system_and_workers_can_reach_s3():
    """Results and checkpoints go to S3 (--results s3://...), so `ray up` needs no file system created first;
    the GPU workers, where trials run, get the S3-capable instance profile Ray creates for the head."""
    config = validated(load())
    commands = "\n".join(config["setup_commands"] + config["head_setup_commands"] + config["worker_setup_commands"])
    assert not any(word in commands for word in ("mount", "nfs", "efs", "fs-0"))
    worker = config["available_node_types"]["gpu_worker"]["node_config"]
    assert worker["IamInstanceProfile"] == {"Name": "ray-autoscaler-v1"}
    assert "--results s3://" in CLUSTER_YAML.read_text() and "iam:PassRole" in CLUSTER_YAML.read_text()


@pytest.mark.parametrize("break_it", [
    lambda c: c.update(max_worker=8),                                            # misspelled top-level key
    lambda c: c["available_node_types"]["gpu_worker"].update(min_worker=0),      # misspelled node-type key
    lambda c: c["available_node_types"]["gpu_worker"]["resources"].update(GPU=0.5),  # resources are integers
    lambda c: c["available_node_types"]["gpu_worker"].pop("node_config"),        # required
])
def test_a_broken_copy_fails_the_schema(break_it):
    config = load()
    break_it(config)
    with pytest.raises(jsonschema.ValidationError):
        validated(config)


def test_an_unknown_head_node_type_fails():
    config = load()
    config["head_node_type"] = "head_typo"
    with pytest.raises(ValueError, match="head_node_type"):
        validated(config)
