"""The node provider of the local cluster: Ray's fake multi-node provider, with two changes for cluster.yaml.

Ray's ``FakeMultiNodeProvider`` starts a worker "node" as a raylet and its processes on this machine, joined to
the head's GCS, and stops them when the autoscaler terminates the node. It is loaded by the autoscaler itself
(``provider: {type: external, module: ...}``), inside the head's monitor process. Changed here:

- it labels the head node type ``ray.head.default`` whatever the config says; here the head keeps the config's
  ``head_node_type`` (handed over in the provider section), so every node type keeps its ``cluster.yaml`` name;
- its nodes share the head's session directory, so they would share one runtime-env directory too, where a
  job's ``--working-dir`` is unpacked: when a worker node's trials end, that node deletes the unpacked copy the
  job's driver still runs in on the head (``FileNotFoundError`` from ``os.getcwd()``). Real nodes have disks
  of their own; here each worker node gets a runtime-env directory of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import ray._private.parameter
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider
from ray.autoscaler.tags import TAG_RAY_USER_NODE_TYPE

HEAD_TYPE_KEY = "head_node_type"  # the provider section's copy of the config's head_node_type


class LocalNodeProvider(FakeMultiNodeProvider):
    """Worker nodes as process groups on this machine; the head keeps its cluster.yaml node type name."""

    def __init__(self, provider_config: dict[str, Any], cluster_name: str) -> None:
        super().__init__(provider_config, cluster_name)
        head_type = provider_config.get(HEAD_TYPE_KEY)
        if head_type:
            self._nodes[self._head_node_id]["tags"][TAG_RAY_USER_NODE_TYPE] = head_type

    def _create_node_with_resources_and_labels(self, node_config: dict[str, Any], tags: dict[str, str], count: int,
                                               resources: dict[str, float], labels: dict[str, str]) -> None:
        with self.lock:  # one node at a time (the lock is re-entrant): each sees its own directory name
            with own_runtime_env_dir(f"runtime_resources_node{self._next_node_id + 1}"):
                super()._create_node_with_resources_and_labels(node_config, tags, count, resources, labels)


@contextlib.contextmanager
def own_runtime_env_dir(name: str) -> Iterator[None]:
    """Nodes created meanwhile keep runtime envs in ``<session>/<name>`` (Ray's ``RayParams.runtime_env_dir_name``,
    which the fake provider leaves at its default)."""
    real = ray._private.parameter.RayParams

    class WithOwnDir(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("runtime_env_dir_name", name)
            super().__init__(*args, **kwargs)

    ray._private.parameter.RayParams = WithOwnDir  # type: ignore[misc]
    try:
        yield
    finally:
        ray._private.parameter.RayParams = real  # type: ignore[misc]
