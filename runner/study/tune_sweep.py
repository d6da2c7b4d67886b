"""A sweep as a Ray Tune experiment: one trial per config, each in its own placement group.

Tune runs the grid (``param_space`` of runner/study/sweep_expand.py) with ``tune_trainable``, reserving for
every trial the layout of runner/engine/layout.py (the trainable, its Driver, its workers). ``--resume``
restores the experiment: Tune skips finished trials and restarts unfinished ones, which pick up from their
own checkpoints under ``<results>/<sweep>/trials/``. ``<results>`` may be a URI (``s3://bucket/prefix``): Tune
keeps its experiment state there too (``storage_path``), and no node needs a shared file system. What the
sweep decided once (runner/study/sweep_context.py) reaches every trial through ``tune.with_parameters``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from typing import Any

from runner.config import TrialConfig
from runner.console import stopping_says
from runner.engine.layout import TrialLayout
from runner.engine.storage import Location
from runner.results_layout import TUNE
from runner.study.capacity import check_trials, connected_cluster
from runner.study.ray_address import ray_address
from runner.study.sweep_context import SweepContext
from runner.study.sweep_expand import param_space, trial_config_from_tune
from runner.study.sweep_file import Sweep
from runner.study.sweep_record import SweepRecord
from runner.study.trial import last_evaluated, run_trial, trial_rows

log = logging.getLogger(__name__)
EXPERIMENT_NAME = TUNE  # <results>/<sweep>/tune holds Tune's experiment state (runner/results_layout.py)


def tune_trainable(params: dict[str, Any], context: SweepContext | None = None) -> None:
    """Ray Tune function trainable: ``params`` holds ``base`` plus the grid's dotted keys and ``variant``;
    ``context`` is what the sweep process decided (W&B access, code version)."""
    from ray import tune

    from runner.study.tune_search import stopped_early

    cfg = trial_config_from_tune(params)
    reported: list[dict[str, Any]] = []

    def report(metrics: dict[str, Any]) -> None:
        reported.append(metrics)
        tune.report(metrics)

    # ASHA stopped it in an earlier run (a restored Tune run knows that; a fresh one learns it here); a trial
    # finished or diverged before is returned by run_trial without starting an actor
    rows = trial_rows(cfg) if stopped_early(cfg) else run_trial(cfg, report=report, context=context)
    final = None if reported else last_evaluated(rows)
    if final is not None:  # done before this run: Tune (its searcher, ASHA) still gets its result
        tune.report(final)


def trial_resources(params: dict[str, Any]) -> Any:
    """Tune's per-trial resource request: the trial's own layout (trials of one sweep may differ in
    ``resources.*``, e.g. num_workers per variant)."""
    return TrialLayout.of(trial_config_from_tune(params).resources).placement_group_factory()


def run_tune(sweep: Sweep, trials: list[TrialConfig], results_dir: str | Location, *, address: str | None,
             max_concurrent: int | None, max_failures: int, resume: bool,
             restore: bool = True, progress_every_s: float = 30.0, context: SweepContext | None = None,
             record: SweepRecord | None = None, resume_hint: str | None = None) -> list[str]:
    """Run (or resume) the sweep under Tune; returns one line per errored trial. A resume restores Tune's own
    experiment, unless ``restore`` is False (flags or settings changed, which a restore would ignore): then a
    fresh experiment runs the same trials, each from its own checkpoint.
    ``record`` (the trials, overrides and flags of this start) is written once the cluster can hold them.
    ``resume_hint``: the command that resumes, printed when a SIGTERM or Ctrl+C stops the sweep."""
    # Tune ignores a custom progress reporter unless its newer console output is switched off.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune

    from runner.study.tune_search import tune_search

    # --address, or the cluster a Ray job runs on, or else a new embedded Ray with this machine's CPUs and GPUs
    # (never whatever RAY_ADDRESS or a dead head's address file points at: runner/study/ray_address.py)
    ray.init(address=ray_address(address))
    check_trials(trials, connected_cluster(address))  # a trial that can never be placed: refused before it starts
    if record is not None:
        record.write(results_dir)  # <results>/<sweep>/sweep.json, read by --resume and runner.plot
    trainable = tune.with_resources(tune.with_parameters(tune_trainable, context=context or SweepContext.here()),
                                    trial_resources)
    results_dir = Location(results_dir)
    experiment = results_dir / EXPERIMENT_NAME
    if resume and restore and tune.Tuner.can_restore(str(experiment)):
        log.info("resuming %s: finished trials are kept, unfinished and errored ones continue", experiment)
        tuner = tune.Tuner.restore(str(experiment), trainable=trainable,
                                   resume_unfinished=True, resume_errored=True)
    else:
        if resume and restore:
            log.info("nothing to resume at %s; starting the sweep", experiment)
        elif not resume and experiment.exists():
            log.info("note: %s holds an earlier run; trials still resume from their own checkpoints "
                     "(pass --resume to continue that Tune run instead)", experiment)
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(sweep, results_root=str(results_dir.parent)),
            tune_config=tune.TuneConfig(trial_name_creator=tune_trial_name, trial_dirname_creator=tune_trial_name,
                                        # max_concurrent_trials, and a search sweep's sampler and scheduler
                                        **tune_search(sweep, trials, max_concurrent)),
            run_config=tune.RunConfig(
                name=EXPERIMENT_NAME,
                storage_path=str(results_dir),  # a path or a URI: Tune opens it with pyarrow, as we do
                failure_config=tune.FailureConfig(max_failures=max_failures),
                progress_reporter=progress_reporter(sweep, trials, progress_every_s, record,
                                                    rounds_written(results_dir) if resume else {}),
                verbose=1,  # the reporter's lines; no per-trial result dicts
            ),
        )
    with stopping_says(resume_hint or "the same command with --resume"):  # after ray.init, which sets its own
        grid = tuner.fit()
    results = [grid[i] for i in range(len(grid))]
    return [f"{result.path}: {_last_line(result.error)}" for result in results if result.error is not None]


def tune_trial_name(trial: Any) -> str:
    """Tune shows and stores each trial under our trial name (``<results>/<sweep>/tune/<trial name>``)."""
    return trial_config_from_tune(trial.config).trial_name


def progress_reporter(sweep: Sweep, trials: list[TrialConfig], every_s: float,
                      record: SweepRecord | None = None, done_before: dict[str, int] | None = None) -> Any:
    """A few lines every ``every_s`` seconds: trials done/running/pending, each running trial's round, an ETA.

    Pending counts every trial the sweep will run, although Tune creates them one by one: a grid's points,
    a random search's seeded draws (named in the record), or as many unnamed ones as Optuna will propose."""
    from runner.study.console_view import SweepProgress

    rounds = {t.trial_name: t.train.rounds for t in trials}
    if record is None or record.search is None:
        return SweepProgress(sweep.name, every_s, rounds, done_before=done_before)
    if record.names_known:
        return SweepProgress(sweep.name, every_s, {name: int(flat["train.rounds"])
                                                   for name, flat in record.trials.items()}, done_before=done_before)
    # Optuna names its trials as it proposes them: the rest of its count is pending
    return SweepProgress(sweep.name, every_s, {}, expected=(record.trial_count, max(rounds.values())),
                         done_before=done_before)


def rounds_written(results_dir: str | Location) -> dict[str, int]:
    """Each trial's last round on disk (what a resume starts from); empty for a sweep with no rows yet."""
    from runner.study.results import load_rounds

    try:
        rows = load_rounds(results_dir)
    except FileNotFoundError:
        return {}
    if not len(rows):
        return {}
    return {str(k): int(v) for k, v in rows.groupby("trial")["round"].max().items()}


def short_names(keys: list[str]) -> dict[str, str]:
    """``model.gamma`` -> ``gamma``, ``algorithm.name`` -> ``algorithm``; the full key where two would clash."""
    def short(key: str) -> str:
        section, _, field = key.rpartition(".")
        return section if field == "name" and section else field

    counts = Counter(short(key) for key in keys)
    return {key: short(key) if counts[short(key)] == 1 else key for key in keys}


def _last_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[-1] if lines else type(error).__name__
