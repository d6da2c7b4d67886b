"""``python -m runner.sweep`` or ``fedpara-sweep``: run one sweep file as a Ray Tune experiment, one placement
group per trial.

This module only reads the command line into a :class:`~runner.study.sweep_request.SweepRequest`; the study
layer does the rest (runner/study/sweep_run.py): checks everything it can before Ray starts, ``--dry-run``
prints the trial grid and the resources each trial reserves (runner/study/dry_run.py), ``--resume`` continues an
interrupted sweep, each unfinished trial from its own checkpoint under ``<results>/<sweep>/trials/``, and a
second run of the same sweep is refused naming the first (runner/study/sweep_lease.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from runner.console import command_name, show_library_logs
from runner.study.console_view import DEFAULT_EVERY_S
from runner.study.ray_address import JOB_RESULTS
from runner.study.sweep_file import shipped_names
from runner.study.sweep_request import DEFAULT_RESULTS, DEFAULT_SWEEP, SweepRequest
from runner.study.sweep_run import run_sweep


def parse_args(argv: Sequence[str] | None) -> SweepRequest:
    prog = command_name("runner.sweep")
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a sweep file (sweeps/*.yaml, or a shipped study by name: fig4) as a Ray Tune experiment.",
        epilog="examples:\n"
               f"  {prog} --dry-run\n"
               f"  {prog} sweeps/fig4.yaml train.rounds=2 --results /tmp/smoke\n"
               f"  {prog} fig4 --address auto --results s3://<bucket>/fedpara --resume   # on the cluster",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_file", nargs="?", type=Path, default=DEFAULT_SWEEP,
                        help=f"a sweep file, or the name of a shipped study ({', '.join(shipped_names())}); "
                             f"default: {DEFAULT_SWEEP}")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="override a config field for every trial, e.g. train.rounds=2 (YAML value)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join ('auto' on a `ray up` head node); default: a local Ray")
    parser.add_argument("--results", default=None,
                        help="results root, a path or a URI such as s3://bucket/prefix; the sweep writes to "
                             f"<results>/<sweep name> (default: {DEFAULT_RESULTS}; in a Ray job "
                             f"{JOB_RESULTS}, and a relative path is refused there)")
    parser.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                        help="run at most N trials at once (default: as many as the cluster fits)")
    parser.add_argument("--max-failures", type=int, default=0, metavar="N",
                        help="retry a failed trial up to N times, e.g. after losing a spot node (default: 0)")
    parser.add_argument("--progress-every", type=float, default=DEFAULT_EVERY_S, metavar="SECONDS",
                        help="print trials done/running/pending, rounds and an ETA at most this often "
                             f"(default: {DEFAULT_EVERY_S:g})")
    parser.add_argument("--dry-run", action="store_true", help="print the trials and their resources, start nothing")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run of this sweep")
    parser.add_argument("--no-plot", action="store_true", help="skip the figures and tables at the end")
    args = parser.parse_intermixed_args(argv)
    if "=" in args.sweep_file.name and not args.sweep_file.exists():  # only overrides were given
        args.overrides.insert(0, str(args.sweep_file))
        args.sweep_file = DEFAULT_SWEEP
    if args.max_concurrent is not None and args.max_concurrent < 1:
        parser.error("--max-concurrent must be >= 1")
    return SweepRequest(sweep_file=args.sweep_file, overrides=tuple(args.overrides), address=args.address,
                        results=args.results, max_concurrent=args.max_concurrent, max_failures=args.max_failures,
                        progress_every_s=args.progress_every, dry_run=args.dry_run, resume=args.resume,
                        plot=not args.no_plot)


def main(argv: Sequence[str] | None = None) -> int:
    request = parse_args(argv)
    show_library_logs()
    return run_sweep(request)


if __name__ == "__main__":
    sys.exit(main())
