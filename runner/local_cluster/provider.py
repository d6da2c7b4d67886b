"""The node provider of the local cluster: Ray's fake multi-node provider, with the head named as in cluster.yaml.

Ray's ``FakeMultiNodeProvider`` starts a worker "node" as a raylet and its processes on this machine, joined to
the head's GCS, and stops them when the autoscaler terminates the node. It labels the head node type
``ray.head.default`` whatever the config says; this subclass labels it with the config's ``head_node_type``
(handed over in the provider section), so every node type keeps its ``cluster.yaml`` name. It is loaded by
the autoscaler itself (``provider: {type: external, module: ...}``), inside the head's monitor process.
"""

from __future__ import annotations

from typing import Any

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
