"""Start the local cluster's head (its autoscaler then starts and stops the worker nodes), and stop it all.

``ray start --head`` runs in a new session (``setsid``), and every process of the cluster descends from it:
the head's, the monitor's, and the worker nodes' that the monitor starts. That session id, and the cluster's own
temporary directory (``--temp-dir``), which its processes name on their command lines, are how ``down`` finds
the processes to stop, without ``ray stop``, which would stop every Ray on the machine. (Some of Ray's
processes rename themselves, ``ray::DashboardAgent``, so the directory alone would miss them.)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from runner.local_cluster.config import (
    CLUSTER_YAML,
    LocalSizes,
    head_resources,
    load_cluster_yaml,
    local_autoscaling_config,
)

DEFAULT_TEMP_DIR = Path("/tmp/fedpara-local")  # short: Ray's socket paths must stay under ~100 characters
STATE_FILE = "local_cluster.json"
AUTOSCALING_CONFIG = "autoscaling.yaml"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LocalCluster:
    """Where a started local cluster is: what ``up`` prints and ``down`` reads back."""

    temp_dir: str
    session_id: int  # the session of `ray start --head`, which every process of the cluster shares
    gcs_address: str
    dashboard_url: str
    autoscaling_config: str

    def describe(self) -> str:
        return (f"local cluster up: GCS {self.gcs_address}, dashboard and Jobs API {self.dashboard_url}\n"
                f"  autoscaling config {self.autoscaling_config} (node types from cluster.yaml)\n"
                f"  ray job submit --address {self.dashboard_url} --working-dir . -- python -m runner.sweep ...\n"
                f"  python -m runner.local_cluster down --temp-dir {self.temp_dir}")


def free_port(preferred: int = 0) -> int:
    """``preferred`` when nothing listens on it, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("", port))
            return s.getsockname()[1]
    raise OSError("no free port")


def ray_cli() -> str:
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else shutil.which("ray") or "ray"


def node_ip() -> str:
    from ray._private.services import get_node_ip_address

    return get_node_ip_address()


def cluster_env(temp_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The head's environment, which its monitor and so every worker node inherits."""
    env = dict(os.environ if base is None else base)
    path = env.get("PYTHONPATH")
    env.update({
        "RAY_FAKE_CLUSTER": "1",  # the fake provider refuses to start without it
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",  # the autoscaler's loop: every second instead of every 5
        "RAY_TMPDIR": str(temp_dir),
        "RAY_USAGE_STATS_ENABLED": "0",
        # the monitor imports the provider from this checkout
        "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
        # a job's `python -m runner.sweep ...` is this interpreter, whether or not its venv is activated
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.defpath)}",
    })
    return env


def start(temp_dir: Path = DEFAULT_TEMP_DIR, sizes: LocalSizes | None = None, cluster_yaml: Path = CLUSTER_YAML,
          env: dict[str, str] | None = None, port: int = 6379, dashboard_port: int = 8265) -> LocalCluster:
    """Start the head with the autoscaling config derived from ``cluster_yaml``; the workers come on demand."""
    temp_dir = temp_dir.resolve()
    if cluster_processes(temp_dir, cluster_session(temp_dir)):
        raise RuntimeError(f"a local cluster already runs under {temp_dir}: "
                           f"python -m runner.local_cluster down --temp-dir {temp_dir}")
    temp_dir.mkdir(parents=True, exist_ok=True)
    gcs_address = f"{node_ip()}:{free_port(port)}"
    dashboard = free_port(dashboard_port)
    config = local_autoscaling_config(load_cluster_yaml(cluster_yaml), gcs_address, sizes or LocalSizes())
    config_path = temp_dir / AUTOSCALING_CONFIG
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    head = head_resources(config)
    command = [ray_cli(), "start", "--head", f"--port={gcs_address.rsplit(':', 1)[1]}",
               f"--num-cpus={head.pop('CPU', 0):g}", f"--num-gpus={head.pop('GPU', 0):g}",
               f"--object-store-memory={head.pop('object_store_memory')}",
               f"--autoscaling-config={config_path}", f"--temp-dir={temp_dir}", "--disable-usage-stats",
               "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
               # Ray's default ports for these may be held by another Ray on this machine
               f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}"]
    if head:
        command.append(f"--resources={json.dumps(head)}")
    head_start = subprocess.Popen(command, env=cluster_env(temp_dir, env), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, start_new_session=True)
    cluster = LocalCluster(str(temp_dir), head_start.pid, gcs_address, f"http://127.0.0.1:{dashboard}",
                           str(config_path))
    (temp_dir / STATE_FILE).write_text(json.dumps(asdict(cluster), indent=1))  # before: down must find it
    output, _ = head_start.communicate()
    if head_start.returncode != 0:
        stop(temp_dir)
        raise RuntimeError(f"ray start --head failed ({head_start.returncode}):\n{output}")
    return cluster


def read_state(temp_dir: Path = DEFAULT_TEMP_DIR) -> LocalCluster | None:
    path = temp_dir / STATE_FILE
    return LocalCluster(**json.loads(path.read_text())) if path.is_file() else None


def cluster_session(temp_dir: Path) -> int | None:
    """The session recorded by ``up``, while some process of it still names ``temp_dir`` (once none does, its id
    may have been given to another session)."""
    state = read_state(temp_dir)
    if state is None:
        return None
    needle = str(temp_dir.resolve())
    return state.session_id if any(sid == state.session_id and needle in args for _, sid, args in process_table()) \
        else None


def cluster_processes(temp_dir: Path, session: int | None = None) -> list[int]:
    """Ids of the processes naming ``temp_dir`` on their command line, or in ``session``: the cluster's."""
    needle, me = str(temp_dir.resolve()), os.getpid()
    return [pid for pid, sid, args in process_table()
            if pid != me and not args.startswith("ps ") and (needle in args or sid == session)]


def process_table() -> list[tuple[int, int, str]]:
    """(pid, session id, command line) of every live process on this machine (zombies are dead already), from
    ``ps`` (``-ww``: whole command lines, which ``ps`` otherwise cuts to the terminal's width; Linux ``sid``,
    macOS ``sess``)."""
    for columns in ("pid=,sid=,stat=,args=", "pid=,sess=,stat=,args="):
        done = subprocess.run(["ps", "-ww", "-eo", columns], capture_output=True, text=True)
        if done.returncode == 0:
            break
    table = []
    for line in done.stdout.splitlines():
        pid, sid, stat, *args = line.split(None, 3)
        if stat.startswith("Z"):
            continue
        with contextlib.suppress(ValueError):
            table.append((int(pid), int(sid), args[0] if args else ""))
    return table


def stop(temp_dir: Path = DEFAULT_TEMP_DIR, grace_s: float = 10, remove: bool = True) -> int:
    """Stop every process of the cluster under ``temp_dir`` (SIGTERM, then SIGKILL); how many there were."""
    temp_dir = temp_dir.resolve()
    session = cluster_session(temp_dir)  # judged once: the processes naming the directory go first
    first = cluster_processes(temp_dir, session)
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        for pid in cluster_processes(temp_dir, session):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while cluster_processes(temp_dir, session) and time.monotonic() < deadline:
            time.sleep(0.2)
    left = cluster_processes(temp_dir, session)
    if left:
        raise RuntimeError(f"processes of the local cluster under {temp_dir} survived SIGKILL: {left}")
    if remove:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return len(first)
