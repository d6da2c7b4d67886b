"""``python -m runner.sweep`` or ``fedpara-sweep``: run one sweep file as a Ray Tune experiment, one placement
group per trial.

Everything that can be checked without Ray is checked first: the sweep file, every trial's config, and
that each dataset is on disk. ``--dry-run`` stops there and prints the trial grid with the resources each
trial reserves (runner/engine/layout.py), refusing a trial that this machine (or the cluster at ``--address``)
could never place (runner/study/capacity.py). A real run checks the same right after ``ray.init`` and hands
the trials to Tune (runner/study/tune_sweep.py). ``--resume`` continues an interrupted sweep: Tune skips
finished trials and restarts unfinished ones, which pick up from their own checkpoints under
``<results>/<sweep>/trials/``. One run of a sweep at a time: a second is refused naming the first
(runner/study/sweep_lease.py).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.config import ConfigError, TrialConfig
from runner.console import command_name, show_library_logs
from runner.engine.layout import Bundle, TrialLayout
from runner.engine.model import model_size
from runner.engine.storage import Location, is_uri, join
from runner.study.console_view import DEFAULT_EVERY_S
from runner.study.probe import dry_run_lines
from runner.study.progress import Progress, sweep_progress
from runner.study.ray_address import (
    JOB_RESULTS,
    cluster_to_check,
    ignored_environment,
    in_ray_job,
    job_results_root,
    ray_description,
)
from runner.study.sweep_context import SweepContext
from runner.study.sweep_file import (
    Sweep,
    SweepError,
    load_with_overrides,
    shipped_sweeps,
    trial_count,
    varying_keys,
)
from runner.study.sweep_lease import SweepLease, SweepRunning
from runner.study.sweep_record import SweepRecord, check_resume, read_record
from runner.study.tune_sweep import EXPERIMENT_NAME, short_names
from runner.study.wandb_access import refuse_unavailable

DEFAULT_SWEEP = Path("sweeps/quickstart.yaml")
DEFAULT_RESULTS = Path("results")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
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
    return args


def shipped_names() -> list[str]:
    return [path.stem for path in sorted(shipped_sweeps().glob("*.yaml"))]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    show_library_logs()
    try:
        args.results = job_results_root(args.results, str(DEFAULT_RESULTS))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        loaded = load_with_overrides(args.sweep_file, args.overrides, args.results)
        sweep, overrides, trials, results_root = loaded.sweep, loaded.overrides, loaded.trials, loaded.results_root
        layouts = [TrialLayout.of(trial.resources) for trial in trials]
        if args.dry_run:
            print(format_trial_table(sweep, trials, layouts))
            for line in format_draws(sweep, trials, results_root):
                print(line)
            print(format_data_check(trials))
            print("\n".join(dry_run_lines(trials, join(results_root, sweep.name))))  # runner/study/probe.py
            print(dry_run_capacity_check(trials, cluster_to_check(args.address)))
            return 0
        check_data(trials)
        refuse_unavailable(t.logging.wandb for t in trials)
        results_dir = join(results_root, sweep.name)
        record = SweepRecord.of(sweep.name, sweep.source, overrides, planned_trials(sweep, trials, results_root),
                                max_concurrent=args.max_concurrent, max_failures=args.max_failures,
                                search=search_summary(sweep, len(trials)),
                                targets=[target.to_dict() for target in sweep.targets])
        changes = resume_changes(record, results_dir) if args.resume else []
    except (SweepError, ConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from runner.study.tune_sweep import run_tune

    context = SweepContext.here()  # W&B mode and key, code version: decided once, handed to every trial
    print(f"sweep {sweep.name}: {trial_count(sweep, len(trials))} trials -> {results_dir}")
    print(f"W&B: {context.wandb.line({t.logging.wandb for t in trials})}")
    print(f"Ray: {ray_description(args.address)}")
    note = ignored_environment(args.address)
    if note:
        print(note)
    if (args.address or in_ray_job()) and not is_uri(results_root):
        print(f"note: {results_root} is a path on this node; trials on other nodes write to their own disks unless it "
              "is a shared file system (use --results s3://<bucket>/<prefix>, see README 'On a cluster')")
    for line in changes:
        print(f"resume: {line}")
    if changes:
        print("resume: a fresh Tune run over the same trials applies these; each continues from its own checkpoint")
    try:
        with SweepLease(results_dir).held():  # one run of a sweep at a time (runner/study/sweep_lease.py)
            errored = run_tune(sweep, trials, results_dir, address=args.address, max_concurrent=args.max_concurrent,
                               max_failures=args.max_failures, resume=args.resume, restore=not changes,
                               progress_every_s=args.progress_every, context=context,
                               record=record, resume_hint=resume_command(args))
    except (ConfigError, SweepRunning) as error:  # a trial the cluster can never hold; another run of the sweep
        print(f"error: {error}", file=sys.stderr)
        return 2
    for line in errored:
        print(f"trial failed: {line}", file=sys.stderr)
    progress = sweep_progress(results_dir)
    for name, at, what in progress.diverged:
        print(f"trial diverged: {name} at round {at} ({what}); stopped there, no final accuracy", file=sys.stderr)
    figures: list[Location] = []
    if not args.no_plot:
        from runner.study.figures import plot_results

        figures = plot_results(results_dir)
    print(format_summary(sweep, results_dir, figures, args, context))
    left = [] if errored else unfinished_lines(progress)
    if left:  # Tune returned early: stopped with Ctrl+C or SIGTERM
        print("\n".join(["stopped before the end:", *left, f"Resume with: {resume_command(args)}"]),
              file=sys.stderr)
        return 130
    return 1 if errored else 0


def planned_trials(sweep: Sweep, points: list[TrialConfig], results_root: str) -> list[TrialConfig]:
    """The trials sweep.json names: a grid's, a random search's seeded draws (the same on every start, so a
    resume compares them like a grid's); Optuna's are proposed as it runs: its grid point stands for them."""
    if sweep.search is None:
        return points
    from runner.study.tune_search import drawn_trials

    return drawn_trials(sweep, results_root) or points


def search_summary(sweep: Sweep, points: int) -> dict[str, Any] | None:
    """What sweep.json says of a search: its algorithm, seed, samples and how many trials it runs in all."""
    search = sweep.search
    if search is None:
        return None
    return {"algorithm": search.algorithm, "seed": search.seed, "samples": search.samples,
            "trials": search.trials(points), "drawn": list(search.space)}


def resume_changes(record: SweepRecord, results_dir: str) -> list[str]:
    """What this ``--resume`` changes from the run it resumes, one line each (honored); a change to the trials
    themselves raises :class:`SweepError` naming the override or field, before anything is written."""
    started = read_record(results_dir)
    if started is None:
        return []  # a run from before sweep.json, or none yet: Tune decides what there is to resume
    return check_resume(started, record)


def data_problems(trials: list[TrialConfig]) -> list[tuple[str, str, FileNotFoundError | None]]:
    """(dataset, root, what is missing or None) for each distinct dataset the trials read."""
    from runner.study.trial import check_dataset

    problems: list[tuple[str, str, FileNotFoundError | None]] = []
    for data in sorted({t.data for t in trials}, key=lambda d: (d.dataset, d.root, d.download)):
        key = (data.dataset, data.root)
        if any(p[:2] == key for p in problems):
            continue
        try:
            check_dataset(data)
            problems.append((*key, None))
        except FileNotFoundError as error:
            problems.append((*key, error))
    return problems


def check_data(trials: list[TrialConfig]) -> None:
    """Fail before Ray starts when a dataset is missing (the error says how to get it)."""
    for _, _, error in data_problems(trials):
        if error is not None:
            raise error


def format_trial_table(sweep: Sweep, trials: list[TrialConfig], layouts: list[TrialLayout]) -> str:
    """The dry-run view: one row per trial with its varying values and its placement-group bundles.

    A search sweep's trials are drawn as it runs: its rows are the grid points (named without the digest,
    which depends on the drawn values), followed by what the search will do."""
    keys = varying_keys(trials)
    search = sweep.search
    headers = ["#", "trial" if search is None else "grid point", *short_names(keys).values(),
               "model size (of the original)", "bundles (trainable | driver | workers)", "CPU", "GPU"]
    rows = []
    sizes: dict[tuple, str] = {}  # one shape-only build per distinct model
    for index, (trial, layout) in enumerate(zip(trials, layouts), start=1):
        flat = trial.flat()
        totals = layout.totals()
        name = trial.trial_name if search is None else trial.trial_name.rsplit("-", 1)[0]
        size_key = (trial.data.dataset, trial.model)
        if size_key not in sizes:
            sizes[size_key] = model_size(trial)
        rows.append([str(index), name, *(_cell(flat.get(k)) for k in keys), sizes[size_key],
                     format_bundles(layout.bundles()), f"{totals['CPU']:g}", f"{totals['GPU']:g}"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join

    count = trial_count(sweep, len(trials))
    copies = count / len(trials)  # the trials of one grid point, all at once
    cpu_all = round(copies * sum(layout.totals()["CPU"] for layout in layouts), 6)
    gpu_all = round(copies * sum(layout.totals()["GPU"] for layout in layouts), 6)
    biggest = max(layouts, key=lambda layout: (layout.totals()["CPU"], layout.totals()["GPU"]))
    size = f"{count} trials" if search is None else f"{count} trials drawn over {len(trials)} grid points"
    text = [f"sweep {sweep.name} ({sweep.source}): {size}",
            *textwrap.wrap(sweep.description, 110), "",
            line(h.ljust(w) for h, w in zip(headers, widths)),
            line("-" * w for w in widths),
            *(line(c.ljust(w) for c, w in zip(r, widths)) for r in rows), "",
            *(search.describe(len(trials), max(t.train.rounds for t in trials)) if search is not None else []),
            f"total if every trial ran at once: {cpu_all:g} CPU, {gpu_all:g} GPU "
            f"(largest trial: {biggest.totals()['CPU']:g} CPU, {biggest.totals()['GPU']:g} GPU, "
            f"{len(biggest.bundles())} bundles, PACKed onto as few nodes as fit)",
            f"results: {trials[0].logging.results_dir}"]
    return "\n".join(text)


def format_draws(sweep: Sweep, points: list[TrialConfig], results_root: str) -> list[str]:
    """A random search's seeded draws, a line per grid point (the values its trials will run with)."""
    if sweep.search is None or sweep.search.algorithm != "random":
        return []
    from runner.study.tune_search import draws_per_point

    groups = draws_per_point(sweep, points, results_root) or []
    lines = [f"draws (seed {sweep.search.seed}):"]
    for index, (point, draws) in enumerate(zip(points, groups), start=1):
        values = "; ".join(f"{key} " + ", ".join(f"{draw.flat()[key]:.4g}" for draw in draws)
                           for key in sweep.search.space)
        lines.append(f"  {index}  {point.trial_name.rsplit('-', 1)[0]}: {values}")
    return lines


def dry_run_capacity_check(trials: list[TrialConfig], address: str | None) -> str:
    """Check every trial against this machine, or the cluster at ``address`` (connecting, starting nothing);
    raises ConfigError naming the field when one can never be placed."""
    from runner.study import capacity

    offered = capacity.cluster_at(address) if address else capacity.this_machine()
    capacity.check_trials(trials, offered)
    return f"capacity: every trial fits on {offered.describe()}"


def format_data_check(trials: list[TrialConfig]) -> str:
    """One line per dataset: on disk, or what is missing and how to get it."""
    lines = ["data:"]
    for dataset, root, error in data_problems(trials):
        lines.append(f"  {dataset} ({root}): ok" if error is None else f"  {dataset} ({root}): MISSING - {error}")
    return "\n".join(lines)


def format_bundles(bundles: list[Bundle]) -> str:
    """``[{"CPU": .1}, {"CPU": .25}, {"CPU": .5}, {"CPU": .5}]`` -> ``0.1C | 0.25C | 2x(0.5C)``."""
    def one(bundle: dict[str, float]) -> str:
        return "+".join(f"{v:g}{'C' if k == 'CPU' else 'G' if k == 'GPU' else ' ' + k}" for k, v in bundle.items())

    parts = [one(b) for b in bundles[:2]]
    workers = Counter(one(b) for b in bundles[2:])
    parts.append(" ".join(f"{n}x({text})" for text, n in workers.items()))
    return " | ".join(p for p in parts if p)


def format_summary(sweep: Sweep, results_dir: str, figures: list[Location], args: argparse.Namespace,
                   context: SweepContext) -> str:
    from runner.study.wandb_run import where_runs_are

    rounds = join(results_dir, "rounds")
    lines = [
        "",
        f"results  {rounds}/*.parquet   " + (f"(python: runner.study.results.load_rounds('{results_dir}'))"
                                               if is_uri(results_dir) else f"(pandas: pd.read_parquet('{rounds}'))"),
        f"figures  {join(results_dir, 'figures')}" + ("" if figures else "   (none written; run python -m runner.plot "
                                                       f"{results_dir})"),
        *(f"         {path}" for path in figures),
        *where_runs_are(results_dir, sweep.name, context.wandb),
        f"Tune     {join(results_dir, EXPERIMENT_NAME)}   (continue with: {resume_command(args)})",
    ]
    return "\n".join(lines)


def resume_command(args: argparse.Namespace) -> str:
    """The command line that continues this sweep."""
    return " ".join([command_name("runner.sweep"), str(args.sweep_file), *args.overrides, "--results",
                     str(args.results), "--resume"])


def unfinished_lines(progress: Progress) -> list[str]:
    """What is not done yet, in words (none when every trial has its rows)."""
    if not progress.missing_count and not progress.unfinished:
        return []
    return [f"  {line}" for line in progress.lines()]


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
