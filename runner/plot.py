"""``python -m runner.plot RESULTS_DIR`` or ``fedpara-plot RESULTS_DIR``: Figures 3 and 4, the grid figure and
tables.md from a sweep's rounds Parquet.

Works on a sweep still running too: the figures use the rows written so far, and the command then says which
of the sweep's trials have no rows yet, which are unfinished and which ASHA stopped early
(runner/study/progress.py).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from runner.console import command_name, show_library_logs
from runner.study.figures import plot_results
from runner.study.progress import sweep_progress
from runner.study.results import load_rounds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=command_name("runner.plot"),
                                     description="Figures 3 and 4, the grid figure and tables.md from a sweep's "
                                                 "results directory (also while the sweep runs).")
    parser.add_argument("results_dir", help="a sweep's results directory or URI, e.g. results/fig4 or "
                                            "s3://bucket/fedpara/fig4")
    parser.add_argument("--out", default=None, help="where to write, a path or a URI (default: RESULTS_DIR/figures)")
    args = parser.parse_args(argv)
    show_library_logs()
    rounds = None  # read once, for the figures and the progress lines
    with contextlib.suppress(FileNotFoundError):
        rounds = load_rounds(args.results_dir)
    written = plot_results(args.results_dir, args.out, rounds)
    for path in written:
        print(path)
    for line in sweep_progress(args.results_dir, rounds).lines():
        print(line)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
