"""``runner.sweep --dry-run``: the trial grid with the resources each trial reserves, its data, its probe
measurements and whether the machine (or the cluster at ``--address``) can place every trial; starts nothing.

The resources are each trial's placement-group bundles (runner/engine/layout.py); a trial that could never be
placed is refused naming the field (runner/study/capacity.py).
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterator
from typing import Any

from runner.config import TrialConfig
from runner.engine.layout import Bundle, TrialLayout
from runner.engine.model import model_size
from runner.engine.storage import join
from runner.study.preflight import data_problems
from runner.study.probe import dry_run_lines
from runner.study.ray_address import cluster_to_check
from runner.study.sweep_expand import LoadedSweep, trial_count, varying_keys
from runner.study.sweep_file import Sweep
from runner.study.tune_sweep import short_names
from runner.trial_identity import point_name


def dry_run_parts(loaded: LoadedSweep, address: str | None) -> Iterator[str]:
    """What ``--dry-run`` prints, part by part, the grid first: the capacity check comes last and raises
    ConfigError naming the field when a trial can never be placed, after the grid that shows it."""
    sweep, trials = loaded.sweep, loaded.trials
    layouts = [TrialLayout.of(trial.resources) for trial in trials]
    yield format_trial_table(sweep, trials, layouts)
    yield from format_draws(sweep, trials, loaded.results_root)
    yield format_data_check(trials)
    yield from dry_run_lines(trials, join(loaded.results_root, sweep.name))  # runner/study/probe.py
    yield capacity_check(trials, cluster_to_check(address))


def format_trial_table(sweep: Sweep, trials: list[TrialConfig], layouts: list[TrialLayout]) -> str:
    """One row per trial with its varying values and its placement-group bundles.

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
        name = trial.trial_name if search is None else point_name(trial.trial_name)
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
        lines.append(f"  {index}  {point_name(point.trial_name)}: {values}")
    return lines


def capacity_check(trials: list[TrialConfig], address: str | None) -> str:
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


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
