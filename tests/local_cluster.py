"""A private Ray cluster on this machine for tests: Ray's own ``cluster_utils.Cluster``, several nodes
with their own CPU and logical GPU resources, and ``python -m runner.sweep --address`` run against it.

The cluster lives under its own temporary directory (``RAY_TMPDIR``), so it never becomes the
"current cluster" that a plain ``ray.init()`` elsewhere on the machine (the session fixture, another
engineer's tests) would join. Its head runs the dashboard on a free port, because Ray's state API
(which node, bundle and GPU each actor holds) is served from there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
# GCS health checks every 0.5 s, a node dead after 2 missed ones (Ray's defaults: 3 s, 5 missed)
FAST_NODE_DEATH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                   "health_check_timeout_ms": 500, "health_check_failure_threshold": 2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """A head node and any number of worker nodes, each a raylet on this machine."""

    def __init__(self, head: dict[str, Any], system_config: dict[str, Any] | None = None) -> None:
        from ray.cluster_utils import Cluster

        self.tmp = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))  # short: Ray's socket paths must stay short
        (self.tmp / "ray").mkdir()
        with self._private_tmp():
            self.cluster = Cluster(initialize_head=True, connect=False, head_node_args={
                **head, "include_dashboard": True, "dashboard_port": free_port(),
                "_system_config": system_config or {}})
        self.names = {self.cluster.head_node.node_id: "head"}

    @contextlib.contextmanager
    def _private_tmp(self) -> Iterator[None]:
        before = os.environ.get("RAY_TMPDIR")
        os.environ["RAY_TMPDIR"] = str(self.tmp)
        try:
            yield
        finally:
            if before is None:
                del os.environ["RAY_TMPDIR"]
            else:
                os.environ["RAY_TMPDIR"] = before

    @property
    def address(self) -> str:
        return self.cluster.address

    def add_node(self, name: str, **resources: Any) -> Any:
        with self._private_tmp():
            node = self.cluster.add_node(**resources)
        self.names[node.node_id] = name
        return node

    def remove_node(self, node: Any) -> None:
        """Kill the node's raylet and everything of Ray's on it at once, as when a machine is lost."""
        with self._private_tmp():
            self.cluster.remove_node(node, allow_graceful=False)

    def node(self, node_id: str) -> Any:
        return next(n for n in self.cluster.list_all_nodes() if n.node_id == node_id)

    def shutdown(self) -> None:
        with self._private_tmp():
            self.cluster.shutdown()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- Ray's own view -------------------------------------------------------------------------------
    def actors(self, class_name: str | None = None) -> list[Any]:
        from ray.util.state import list_actors

        filters = [("class_name", "=", class_name)] if class_name else None
        return list_actors(address=self.address, filters=filters, detail=True, limit=10_000)

    def placement_groups(self) -> list[Any]:
        from ray.util.state import list_placement_groups

        return list_placement_groups(address=self.address, detail=True, limit=10_000)

    def alive_nodes(self) -> list[Any]:
        from ray.util.state import list_nodes

        return [n for n in list_nodes(address=self.address, detail=True, limit=10_000) if n.state == "ALIVE"]

    # --- the runner's command line against this cluster ------------------------------------------------
    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(self.tmp), "RAY_DEDUP_LOGS": "0",
                "WANDB_MODE": "offline", "WANDB_SILENT": "true"}

    def sweep_command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "runner.sweep", *args, "--address", self.address]

    def run_sweep(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.sweep_command(*args), cwd=ROOT, env=self.env(), capture_output=True, text=True,
                              timeout=timeout)

    def start_sweep(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.sweep_command(*args), cwd=ROOT, env=self.env(), stdout=log.open("wb"),
                                stderr=subprocess.STDOUT)

    def worker_logs(self) -> str:
        """Everything Ray's worker processes wrote to stderr, from the head's session directory."""
        logs = Path(self.cluster.head_node.get_session_dir_path()) / "logs"
        return "\n".join(p.read_text(errors="replace") for p in sorted(logs.glob("worker-*.err")))


def rows_written(results: Path) -> int:
    """How many rows the sweep's trials have written so far (their Parquet files, re-read)."""
    total = 0
    for path in results.glob("*/rounds/*.parquet"):
        with contextlib.suppress(OSError, ValueError):  # replaced under us: the next look sees it whole
            total += pq.read_metadata(path).num_rows
    return total


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[bytes], what: str,
               limit_s: float = 240) -> None:
    """Poll until ``condition`` holds; fail (not time) if the sweep exits first or never gets there."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the sweep exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        time.sleep(0.05)


def freeze(pids: list[int]) -> None:
    """Stop processes this test's cluster started, so the trial cannot move on while their node is removed."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)


def kill(pids: list[int]) -> None:
    """The frozen processes of a removed node go with it."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
