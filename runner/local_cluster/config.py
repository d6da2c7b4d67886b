"""The local cluster's autoscaling config, derived from ``cluster.yaml`` so that it cannot drift from it.

Kept from ``cluster.yaml``: the node type names, each type's CPUs and GPUs (as logical resources: a worker
node here declares 1 GPU that is not there, and its trials' workers fall back to the CPU), ``min_workers``,
``upscaling_speed`` and which type is the head. So the autoscaler and the capacity check see the very
shapes of the cloud cluster, and a trial that fits one fits the other.

Changed to fit one machine (:class:`LocalSizes`): the provider (worker nodes are processes here, not EC2
instances), ``max_workers`` (capped, per type and in all: each node is a raylet and its helpers, a few
hundred MB of memory), the object store of each node (small: trials pass only model weights), and
``idle_timeout_minutes`` (short, so removing idle nodes can be watched). Setup commands, file mounts and
images do not apply: every node runs this checkout with this interpreter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.local_cluster.provider import HEAD_TYPE_KEY

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"
PROVIDER_MODULE = "runner.local_cluster.provider.LocalNodeProvider"
LOGICAL = ("CPU", "GPU")  # the resources copied from cluster.yaml


@dataclass(frozen=True)
class LocalSizes:
    """What differs from ``cluster.yaml`` on one machine; each field is a flag of ``runner.local_cluster up``."""

    max_workers: int = 2  # worker nodes at most, per node type and in all
    idle_timeout_minutes: float = 1.0
    object_store_mb: int = 100  # per node; Ray refuses less than 75

    def __post_init__(self) -> None:
        if self.max_workers < 0:
            raise ValueError(f"--max-workers: must be >= 0, got {self.max_workers}")
        if self.idle_timeout_minutes < 0:
            raise ValueError(f"--idle-timeout-minutes: must be >= 0, got {self.idle_timeout_minutes}")
        if self.object_store_mb < 75:
            raise ValueError(f"--object-store-mb: Ray needs at least 75, got {self.object_store_mb}")

    @property
    def object_store_bytes(self) -> int:
        return self.object_store_mb * 2**20


def load_cluster_yaml(path: Path = CLUSTER_YAML) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text())


def local_autoscaling_config(cluster: Mapping[str, Any], gcs_address: str, sizes: LocalSizes) -> dict[str, Any]:
    """The autoscaling config the local head's monitor reads: ``cluster``'s node types, resized by ``sizes``."""
    head = cluster["head_node_type"]
    cluster_max = min(int(cluster.get("max_workers", sizes.max_workers)), sizes.max_workers)
    types: dict[str, Any] = {}
    for name, spec in cluster["available_node_types"].items():
        resources = {key: spec.get("resources", {})[key] for key in LOGICAL if key in spec.get("resources", {})}
        resources["object_store_memory"] = sizes.object_store_bytes
        if name == head:
            types[name] = {"resources": resources, "node_config": {}, "min_workers": 0, "max_workers": 0}
            continue
        most = min(int(spec.get("max_workers", cluster_max)), cluster_max)
        types[name] = {"resources": resources, "node_config": {},
                       "min_workers": min(int(spec.get("min_workers", 0)), most), "max_workers": most}
    return {
        "cluster_name": f"{cluster.get('cluster_name', 'fedpara')}-local",
        "max_workers": cluster_max,
        "upscaling_speed": cluster.get("upscaling_speed", 1.0),
        "idle_timeout_minutes": sizes.idle_timeout_minutes,
        "provider": {
            "type": "external", "module": PROVIDER_MODULE, HEAD_TYPE_KEY: head, "gcs_address": gcs_address,
            # as Ray's fake multi-node example: nodes are told apart by id (they share one IP), and nothing
            # is installed or checked on them (they run this checkout)
            "use_node_id_as_ip": True, "disable_node_updaters": True, "disable_launch_config_check": True,
        },
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": types,
        "head_node_type": head,
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


def head_resources(config: Mapping[str, Any]) -> dict[str, float]:
    """The head node type's resources (CPU, GPU, object store), which ``ray start --head`` is given as flags."""
    return dict(config["available_node_types"][config["head_node_type"]]["resources"])
