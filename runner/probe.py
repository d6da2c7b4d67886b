"""``python -m runner.probe``: measure how many client workers of each model in a sweep fit on one GPU.

For each distinct model of the sweep (architecture, parameterization, dataset, batch size, precision),
one worker is built on the device at hand and trains a few clients; the peak memory, the client updates
per second and the largest number of workers per GPU (with a margin) are printed and saved to
``<results>/<sweep>/probe.json``, where ``python -m runner.sweep --dry-run`` shows them per trial.
The measuring is in runner/study/probe.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from runner.config import ConfigError
from runner.console import command_name, show_library_logs
from runner.study import probe
from runner.study.sweep_expand import load_with_overrides
from runner.study.sweep_file import SweepError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=command_name("runner.probe"),
        description="Measure each distinct model of a sweep: peak memory, client updates per second, "
                    "workers per GPU.",
        epilog="examples:\n"
               "  python -m runner.probe sweeps/fig4.yaml                        # on a GPU machine\n"
               "  python -m runner.probe sweeps/quickstart.yaml --gpu-memory 24  # planning from a CPU",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_file", type=Path, help="sweep file (sweeps/*.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="override a config field, e.g. data.root=/data")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="where to measure (default: cuda if available, else cpu)")
    parser.add_argument("--margin", type=float, default=0.1, help="GPU memory kept free (default: 0.1, i.e. 10 %%)")
    parser.add_argument("--gpu-memory", type=float, default=None, metavar="GiB",
                        help="the GPU to plan for (default: the measured GPU's memory)")
    parser.add_argument("--clients", type=int, default=2, help="clients to time after a warm-up one (default: 2)")
    parser.add_argument("--results", default="results",
                        help="results root, a path or a URI; writes <results>/<sweep name>/probe.json "
                             "(default: results)")
    args = parser.parse_intermixed_args(argv)
    if not 0 <= args.margin < 1:
        parser.error("--margin must be in [0, 1)")
    if args.clients < 1:
        parser.error("--clients must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    show_library_logs()
    try:
        loaded = load_with_overrides(args.sweep_file, args.overrides, args.results)
    except (SweepError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    shown = f" ({command_name('runner.sweep')} {args.sweep_file} --dry-run shows it per trial)"
    device = args.device or probe.default_device()
    for line in probe.probe_sweep(loaded, device, clients=args.clients, margin=args.margin,
                                  gpu_memory_gib=args.gpu_memory, saved_note=shown):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
