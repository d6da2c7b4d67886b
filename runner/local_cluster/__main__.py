"""``python -m runner.local_cluster up|down|status``: the cluster of cluster.yaml, as processes on this machine."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from runner.local_cluster.config import CLUSTER_YAML, LocalSizes
from runner.local_cluster.processes import DEFAULT_TEMP_DIR, cluster_processes, cluster_session, read_state, start, stop

TOKEN_FILE = Path("~/.ray/auth_token")  # Ray 2.60 turns token authentication on for a head where it exists


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.local_cluster", description=__doc__)
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--temp-dir", type=Path, default=DEFAULT_TEMP_DIR,
                        help=f"the cluster's own Ray temp directory, which names it (default {DEFAULT_TEMP_DIR})")
    parser.add_argument("--cluster-yaml", type=Path, default=CLUSTER_YAML)
    defaults = LocalSizes()
    parser.add_argument("--max-workers", type=int, default=defaults.max_workers,
                        help="worker nodes at most, per node type and in all (cluster.yaml's, capped)")
    parser.add_argument("--idle-timeout-minutes", type=float, default=defaults.idle_timeout_minutes)
    parser.add_argument("--object-store-mb", type=int, default=defaults.object_store_mb)
    parser.add_argument("--port", type=int, default=6379, help="the GCS port, when free (else any free one)")
    parser.add_argument("--dashboard-port", type=int, default=8265,
                        help="the dashboard and Jobs API port, when free (else any free one)")
    args = parser.parse_args(argv)
    if args.action == "up":
        try:
            sizes = LocalSizes(args.max_workers, args.idle_timeout_minutes, args.object_store_mb)
            cluster = start(args.temp_dir, sizes, args.cluster_yaml, port=args.port, dashboard_port=args.dashboard_port)
        except (ValueError, RuntimeError) as error:
            print(error, file=sys.stderr)
            return 2
        print(cluster.describe())
        if TOKEN_FILE.expanduser().is_file() and os.environ.get("RAY_AUTH_MODE") != "token":
            print(f"  token authentication is on ({TOKEN_FILE} exists): `export RAY_AUTH_MODE=token` for "
                  "`ray job` and `ray status` to send it")
        return 0
    if args.action == "down":
        print(f"stopped {stop(args.temp_dir)} processes of the local cluster under {args.temp_dir}")
        return 0
    state, pids = read_state(args.temp_dir), cluster_processes(args.temp_dir, cluster_session(args.temp_dir))
    print(state.describe() if state and pids else f"no local cluster runs under {args.temp_dir}")
    return 0 if state and pids else 1


if __name__ == "__main__":
    sys.exit(main())
