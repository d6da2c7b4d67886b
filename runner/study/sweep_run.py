"""One ``runner.sweep`` command, start to end: load the sweep, check it before Ray starts, show the dry run or
run the trials as a Ray Tune experiment, then draw the figures and say where everything is.

Everything that can be checked without Ray is checked first: the sweep file, every trial's config, that each
dataset is on disk (runner/study/preflight.py) and, on ``--resume``, that the trials are those of the run it
resumes (runner/study/sweep_record.py). ``--dry-run`` stops there (runner/study/dry_run.py). One run of a sweep
at a time: a second is refused naming the first (runner/study/sweep_lease.py). Returns the command's exit code:
0 done, 1 a trial failed, 2 a bad request, 130 stopped before the end.
"""

from __future__ import annotations

import sys

from runner.config import ConfigError
from runner.engine.storage import Location, is_uri, join
from runner.results_layout import figures_dir, rounds_dir, tune_dir
from runner.study.dry_run import dry_run_parts
from runner.study.preflight import check_data, resume_changes
from runner.study.progress import Progress, sweep_progress
from runner.study.ray_address import ignored_environment, in_ray_job, job_results_root, ray_description
from runner.study.sweep_context import SweepContext
from runner.study.sweep_expand import LoadedSweep, load_with_overrides, trial_count
from runner.study.sweep_file import SweepError
from runner.study.sweep_lease import SweepLease, SweepRunning
from runner.study.sweep_record import record_for
from runner.study.sweep_request import DEFAULT_RESULTS, SweepRequest
from runner.study.wandb_access import refuse_unavailable


def run_sweep(request: SweepRequest) -> int:
    """Do what ``request`` asks, printing as it goes (errors to stderr); returns the exit code."""
    try:
        request = request.with_results(job_results_root(request.results, DEFAULT_RESULTS))
    except ValueError as error:
        return _refused(error)
    try:
        loaded = load_with_overrides(request.sweep_file, request.overrides, str(request.results))
        if request.dry_run:
            for part in dry_run_parts(loaded, request.address):
                print(part)
            return 0
        trials = loaded.trials
        check_data(trials)
        refuse_unavailable(t.logging.wandb for t in trials)
        results_dir = join(loaded.results_root, loaded.sweep.name)
        record = record_for(loaded, max_concurrent=request.max_concurrent, max_failures=request.max_failures)
        changes = resume_changes(record, results_dir) if request.resume else []
    except (SweepError, ConfigError, FileNotFoundError) as error:
        return _refused(error)

    from runner.study.tune_sweep import run_tune

    context = SweepContext.here()  # W&B mode and key, code version: decided once, handed to every trial
    for line in start_lines(loaded, request, context, results_dir, changes):
        print(line)
    try:
        with SweepLease(results_dir).held():  # one run of a sweep at a time (runner/study/sweep_lease.py)
            errored = run_tune(loaded.sweep, trials, results_dir, address=request.address,
                               max_concurrent=request.max_concurrent, max_failures=request.max_failures,
                               resume=request.resume, restore=not changes, progress_every_s=request.progress_every_s,
                               context=context, record=record, resume_hint=request.resume_command())
    except (ConfigError, SweepRunning) as error:  # a trial the cluster can never hold; another run of the sweep
        return _refused(error)
    for line in errored:
        print(f"trial failed: {line}", file=sys.stderr)
    progress = sweep_progress(results_dir)
    for name, at, what in progress.diverged:
        print(f"trial diverged: {name} at round {at} ({what}); stopped there, no final accuracy", file=sys.stderr)
    figures: list[Location] = []
    if request.plot:
        from runner.study.figures import plot_results

        figures = plot_results(results_dir)
    print(summary_text(loaded, request, context, results_dir, figures))
    left = [] if errored else unfinished_lines(progress)
    if left:  # Tune returned early: stopped with Ctrl+C or SIGTERM
        print("\n".join(["stopped before the end:", *left, f"Resume with: {request.resume_command()}"]),
              file=sys.stderr)
        return 130
    return 1 if errored else 0


def start_lines(loaded: LoadedSweep, request: SweepRequest, context: SweepContext, results_dir: str,
                changes: list[str]) -> list[str]:
    """What a run says before its trials start: how many, where to, W&B, Ray, and what a resume changes."""
    trials, results_root = loaded.trials, loaded.results_root
    lines = [f"sweep {loaded.sweep.name}: {trial_count(loaded.sweep, len(trials))} trials -> {results_dir}",
             f"W&B: {context.wandb.line({t.logging.wandb for t in trials})}",
             f"Ray: {ray_description(request.address)}"]
    note = ignored_environment(request.address)
    if note:
        lines.append(note)
    if (request.address or in_ray_job()) and not is_uri(results_root):
        lines.append(f"note: {results_root} is a path on this node; trials on other nodes write to their own disks "
                     "unless it is a shared file system (use --results s3://<bucket>/<prefix>, see README 'On a "
                     "cluster')")
    lines += [f"resume: {line}" for line in changes]
    if changes:
        lines.append("resume: a fresh Tune run over the same trials applies these; each continues from its own "
                     "checkpoint")
    return lines


def summary_text(loaded: LoadedSweep, request: SweepRequest, context: SweepContext, results_dir: str,
                 figures: list[Location]) -> str:
    """Where everything the run wrote is, and how to continue it."""
    from runner.study.wandb_run import where_runs_are

    rounds = rounds_dir(results_dir)
    lines = [
        "",
        f"results  {rounds}/*.parquet   " + (f"(python: runner.study.results.load_rounds('{results_dir}'))"
                                               if is_uri(results_dir) else f"(pandas: pd.read_parquet('{rounds}'))"),
        f"figures  {figures_dir(results_dir)}" + ("" if figures else "   (none written; run python -m runner.plot "
                                                  f"{results_dir})"),
        *(f"         {path}" for path in figures),
        *where_runs_are(results_dir, loaded.sweep.name, context.wandb),
        f"Tune     {tune_dir(results_dir)}   (continue with: {request.resume_command()})",
    ]
    return "\n".join(lines)


def unfinished_lines(progress: Progress) -> list[str]:
    """What is not done yet, in words (none when every trial has its rows)."""
    if not progress.missing_count and not progress.unfinished:
        return []
    return [f"  {line}" for line in progress.lines()]


def _refused(error: BaseException) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 2
