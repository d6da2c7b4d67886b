"""What a cluster can hold, and whether each trial's placement group fits in it.

A trial reserves one placement group (runner/engine/layout.py): the trial process, its Driver and its
workers. A group that can never be placed does not fail in Ray: Tune shows the trial PENDING for ever.
So the sweep checks every trial against the capacity on offer before any actor starts, and refuses
with the field to change.

The capacity is a list of node shapes: this machine as Ray would detect it (``--dry-run`` without
``--address``), or a running cluster's alive nodes plus the node types its autoscaler may still
launch (read from the GCS when the platform reports them, else from the config file the cluster's
autoscaler runs with: the one its monitor process names when that runs on this machine, as for a Ray job
or on the head, else ``~/ray_bootstrap_config.yaml``, which ``ray up`` leaves on the head node). A node
type whose resources are not written down leaves the capacity open-ended: nothing is refused then,
because a GPU node that is not up yet is not a reason to refuse a GPU trial.

A placement group's bundles must each fit on one node, but PACK is soft: they may spread over several
nodes. A fractional GPU comes from a single GPU (Ray never splits 0.4 of a GPU across two), so a
node with 2 GPUs holds 4 workers of 0.4 GPU, not 5. Because a trial's worker bundles are identical
and the other two need CPU only, the check is exact: try every node for the trial process and the
Driver, and count how many workers the rest can hold.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.config import ConfigError, TrialConfig
from runner.engine.layout import TRAINABLE_CPUS, TrialLayout

BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")  # what `ray up` leaves on the head node
EPS = 1e-6  # Ray counts resources in units of 1e-4; this only absorbs float noise


@dataclass(frozen=True)
class NodeShape:
    """One kind of node, and how many of it there are (``None``: as many as needed)."""

    name: str  # "alive", or the autoscaler's node type
    cpus: float
    gpus: float
    count: int | None = 1

    def describe(self) -> str:
        count = "any number" if self.count is None else str(self.count)
        return f"{count} x ({self.cpus:g} CPU, {self.gpus:g} GPU) {self.name}"


@dataclass(frozen=True)
class Capacity:
    """The nodes a trial may use; ``open_ended`` when some node type's size is unknown."""

    where: str  # "this machine", "the cluster at 10.0.0.1:6379"
    nodes: tuple[NodeShape, ...]
    open_ended: bool = False
    hint: str = ""

    def describe(self) -> str:
        shapes = "; ".join(n.describe() for n in self.nodes) or "no nodes"
        unknown = " and node types of unknown size" if self.open_ended else ""
        return f"{self.where}: {shapes}{unknown}{f'; {self.hint}' if self.hint else ''}"


def workers_on(cpus: float, gpus: float, worker_cpus: float, worker_gpus: float) -> int:
    """How many identical worker bundles a node with this much free CPU and GPU holds."""
    by_cpu = math.floor(cpus / worker_cpus + EPS) if worker_cpus > 0 else math.inf
    if worker_gpus <= 0:
        return int(by_cpu) if by_cpu != math.inf else 0
    whole, part = math.floor(gpus + EPS), max(0.0, gpus - math.floor(gpus + EPS))
    per_gpu = math.floor(1 / worker_gpus + EPS)  # a fraction is taken from one GPU
    by_gpu = whole * per_gpu + math.floor(part / worker_gpus + EPS)
    return int(min(by_cpu, by_gpu))


def placeable_workers(layout: TrialLayout, nodes: Sequence[tuple[float, float, int]]) -> int:
    """The most workers of ``layout`` that fit next to its trial process and Driver on ``nodes``
    ((CPU, GPU, how many such nodes)), or -1 when the trial process and the Driver do not fit at all.

    Nodes of one shape are interchangeable, so it is enough to try each shape (or pair of shapes) for
    the trial process and the Driver and count the workers the rest hold.
    """
    def holds(cpus: float, gpus: float) -> int:
        return workers_on(cpus, gpus, layout.worker_cpus, layout.worker_gpus) if cpus > -EPS else -10**9

    base = sum(n * holds(c, g) for c, g, n in nodes)
    trainable, driver = TRAINABLE_CPUS, layout.driver_cpus
    best = -1
    for i, (ci, gi, ni) in enumerate(nodes):
        if ni < 1:
            continue
        # both on one node of shape i
        best = max(best, base - holds(ci, gi) + holds(ci - trainable - driver, gi))
        for j, (cj, gj, nj) in enumerate(nodes):
            if (i == j and ni < 2) or nj < 1:
                continue
            change = holds(ci - trainable, gi) - holds(ci, gi) + holds(cj - driver, gj) - holds(cj, gj)
            best = max(best, base + change)
    return best if best >= 0 else -1


def node_counts(capacity: Capacity, limit: int) -> list[tuple[float, float, int]]:
    """Every node shape as (CPU, GPU, count), an open-ended node type counted ``limit`` times."""
    return [(n.cpus, n.gpus, limit if n.count is None else n.count) for n in capacity.nodes]


def layout_problem(layout: TrialLayout, capacity: Capacity) -> str | None:
    """Why ``layout`` can never be placed on ``capacity`` (starting with the field to change), or None."""
    if capacity.open_ended:
        return None
    nodes = [(c, g) for c, g, n in node_counts(capacity, limit=layout.num_workers + 2) if n > 0]
    where = capacity.describe()
    if not nodes:
        return f"resources: {where} offers no nodes"
    most_cpus = max(c for c, _ in nodes)
    most_gpus = max(g for _, g in nodes)
    if layout.driver_cpus > most_cpus + EPS:
        return f"resources.driver_cpus: {layout.driver_cpus:g}, but the largest node has {most_cpus:g} CPU ({where})"
    if layout.worker_gpus > 0 and most_gpus <= 0:
        return f"resources.gpus_per_worker: {layout.worker_gpus:g}, but no node has a GPU ({where})"
    if layout.worker_cpus > most_cpus + EPS:
        return (f"resources.cpus_per_worker: {layout.worker_cpus:g}, but the largest node has {most_cpus:g} CPU "
                f"({where})")
    if not any(workers_on(c, g, layout.worker_cpus, layout.worker_gpus) for c, g in nodes):
        gpu_cpus = max(c for c, g in nodes if g > 0)
        return (f"resources.cpus_per_worker: {layout.worker_cpus:g} with resources.gpus_per_worker: "
                f"{layout.worker_gpus:g}, but no node has both: the GPU nodes have at most {gpu_cpus:g} CPU ({where})")
    fit = placeable_workers(layout, node_counts(capacity, limit=layout.num_workers + 2))
    if fit < layout.num_workers:
        totals = layout.totals()
        return (f"resources.num_workers: {layout.num_workers} workers of {layout.worker_cpus:g} CPU"
                f"{f' + {layout.worker_gpus:g} GPU' if layout.worker_gpus else ''} next to the driver "
                f"({layout.driver_cpus:g} CPU) and the trial process ({TRAINABLE_CPUS:g} CPU), "
                f"{totals['CPU']:g} CPU and {totals['GPU']:g} GPU in all, can never be placed: "
                f"at most {max(fit, 0)} of them fit there ({where})")
    return None


def check_trials(trials: Sequence[TrialConfig], capacity: Capacity) -> None:
    """Raise :class:`ConfigError` naming the field when some trial can never be placed on ``capacity``."""
    failing: dict[str, list[str]] = {}
    for trial in trials:
        problem = layout_problem(TrialLayout.of(trial.resources), capacity)
        if problem is not None:
            failing.setdefault(problem, []).append(trial.trial_name)
    if failing:
        lines = []
        for problem, names in failing.items():
            others = f" and {len(names) - 1} more" if len(names) > 1 else ""
            lines.append(f"{problem} [trial {names[0]}{others}]")
        raise ConfigError("\n".join(lines))


# --- where the capacity comes from ---------------------------------------------------------------

def this_machine() -> Capacity:
    """This machine as ``ray.init()`` would see it: Ray's own CPU and GPU detection."""
    try:
        from ray._private.resource_and_label_spec import ResourceAndLabelSpec

        spec = ResourceAndLabelSpec().resolve(is_head=True)
        cpus, gpus = float(spec.num_cpus or 0), float(spec.num_gpus or 0)
    except Exception:  # a private Ray API: fall back to what the OS and torch report
        import torch

        cpus, gpus = float(os.cpu_count() or 1), float(torch.cuda.device_count())
    return Capacity("this machine", (NodeShape("as Ray detects it", cpus, gpus),),
                    hint="pass --address to check against a cluster")


def connected_cluster(address: str | None = None) -> Capacity:
    """The cluster this process is connected to: its alive nodes, plus what its autoscaler may launch."""
    import ray

    alive = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    counts = Counter((float(r.get("CPU", 0)), float(r.get("GPU", 0))) for r in alive)
    nodes = [NodeShape("alive", cpus, gpus, n) for (cpus, gpus), n in sorted(counts.items())]
    types, open_ended = autoscaler_node_types(ray.get_runtime_context().gcs_address)
    where = f"the cluster at {address}" if address else "the cluster"
    return Capacity(where, (*nodes, *types), open_ended)


def autoscaler_node_types(gcs_address: str | None = None) -> tuple[list[NodeShape], bool]:
    """Node types the cluster's autoscaler may add, and whether some type's size is unknown.

    Platforms that report their node groups to the GCS are read from there; Ray's own autoscaler (``ray up``,
    ``runner.local_cluster``) from the config file its monitor reads. Alive nodes of a type are counted
    again here: the capacity may be overstated (a trial is then left to wait), never understated (a trial
    wrongly refused).
    """
    reported = _gcs_node_groups()
    if reported is not None:
        return reported
    path = (gcs_address and monitor_config_path(gcs_address, _process_command_lines())) or BOOTSTRAP_CONFIG
    path = path.expanduser()
    if not path.is_file():
        return [], False
    import yaml

    return bootstrap_node_types(yaml.safe_load(path.read_text()) or {})


def monitor_config_path(gcs_address: str, command_lines: Iterable[Sequence[str]]) -> Path | None:
    """The ``--autoscaling-config`` of the autoscaler monitor serving ``gcs_address``, among ``command_lines``.

    ``ray start --head --autoscaling-config=<file>`` hands the file to the monitor process it starts; only
    ``ray up`` puts it at ``~/ray_bootstrap_config.yaml``, so a head started otherwise (a local cluster, a
    hand-made one) is only found this way.
    """
    for args in command_lines:
        if not any(a.endswith("monitor.py") for a in args) or f"--gcs-address={gcs_address}" not in args:
            continue
        for arg in args:
            if arg.startswith("--autoscaling-config="):
                return Path(arg.split("=", 1)[1])
    return None


def _process_command_lines() -> list[list[str]]:
    """Every readable process's command line on this machine (Linux ``/proc``; elsewhere none)."""
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:  # gone, or another user's
            continue
        lines.append([a.decode(errors="replace") for a in args if a])
    return lines


def bootstrap_node_types(config: Mapping[str, Any]) -> tuple[list[NodeShape], bool]:
    """Worker node types of a cluster launcher config (``available_node_types``, ``max_workers``).

    A type launches at most its own ``max_workers`` and never more than the cluster's ``max_workers``, which
    Ray's autoscaler holds all worker nodes to together.
    """
    types = config.get("available_node_types") or {}
    head = config.get("head_node_type")  # the head is up, so it is among the alive nodes
    cluster_max = config.get("max_workers")

    def most(spec: Mapping[str, Any]) -> int | None:
        own = spec.get("max_workers", cluster_max)
        if own is None or cluster_max is None:
            return own if own is not None else cluster_max
        return min(int(own), int(cluster_max))

    return _node_groups((name, spec.get("resources") or {}, most(spec)) for name, spec in types.items()
                        if name != head)


def _gcs_node_groups() -> tuple[list[NodeShape], bool] | None:
    """The node groups a platform reported to the GCS (Ray's ClusterConfig), or None when none did."""
    try:
        from ray._private.state import state

        config = state.get_cluster_config()
    except Exception:  # a private Ray API, absent or changed: fall back to the bootstrap config
        return None
    if config is None or not config.node_group_configs:
        return None
    return _node_groups(
        (group.name, dict(group.resources), group.max_count) for group in config.node_group_configs)


def _node_groups(groups: Iterable[tuple[str, Mapping[str, float], int | None]]) -> tuple[list[NodeShape], bool]:
    """Node shapes from (name, resources, max count: None or negative for no limit); a group whose CPUs the
    provider sizes at launch makes the capacity open-ended (returned as the flag)."""
    shapes, open_ended = [], False
    for name, resources, max_count in groups:
        if max_count == 0:
            continue
        if "CPU" not in resources:
            open_ended = True  # sized by the provider at launch: unknown here
            continue
        shapes.append(NodeShape(name, float(resources["CPU"]), float(resources.get("GPU", 0)),
                                None if max_count is None or max_count < 0 else int(max_count)))
    return shapes, open_ended


def cluster_at(address: str) -> Capacity:
    """Connect to the cluster at ``address`` just long enough to read its capacity (the dry run)."""
    import ray

    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        return connected_cluster(address)
    finally:
        ray.shutdown()
