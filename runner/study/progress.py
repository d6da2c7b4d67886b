"""How far a sweep has got: which of its trials have no rows yet, which are unfinished or stopped early.

The sweep's trial list is its record, ``<results>/<sweep>/sweep.json`` (runner/study/sweep_record.py): every
trial by name where the names are known before it runs (a grid; a random search's seeded draws), else (Optuna)
how many trials it runs. :func:`sweep_progress` compares that list with the rows on disk (each trial's Parquet
file holds its rounds so far) and with the trials ASHA stopped early (``<results>/<sweep>/stopped/``,
runner/study/tune_search.py), so ``python -m runner.plot`` can draw a sweep still running and say what its
figures do not show yet. A trial whose last row says it diverged is listed as such, neither finished nor
unfinished.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

from runner.engine.storage import Location
from runner.results_layout import STOPPED, stopped_dir, stopped_file
from runner.study.results import load_rounds
from runner.study.sweep_record import RECORD_NAME, read_record

STOPPED_DIR = STOPPED  # <results>/<sweep>/stopped/<trial>.json: stopped early by ASHA (runner/study/tune_search.py)
LISTED = 8  # names shown in one line before "and N more"


@dataclass
class Progress:
    """Where a sweep stands; ``lines()`` says it in words."""

    expected: int | None = None  # trials the sweep runs; None without its record
    with_rows: int = 0
    finished: int = 0
    unfinished: list[tuple[str, int, int]] = field(default_factory=list)  # (trial, last round, rounds)
    stopped: list[tuple[str, int, int]] = field(default_factory=list)     # stopped early by ASHA
    diverged: list[tuple[str, int, str]] = field(default_factory=list)    # (trial, round, what was not finite)
    missing: list[str] = field(default_factory=list)                      # trials without rows, by name
    missing_count: int = 0
    strangers: list[str] = field(default_factory=list)  # trials with rows that the record does not list
    search: str | None = None                            # "random" / "optuna" for a search sweep
    where: str = ""

    def lines(self) -> list[str]:
        total = self.expected
        lines = []
        if total is None:
            lines.append(f"{self.with_rows} trials have rows ({self.where}/{RECORD_NAME} is missing, so which trials "
                         "have none yet is unknown: python -m runner.sweep writes it)")
        elif self.missing_count == 0 and not self.unfinished:
            ended = [f"{len(self.stopped)} of them stopped early by ASHA"] if self.stopped else []
            ended += [f"{len(self.diverged)} diverged"] if self.diverged else []
            done = f"all {total} trials have rows" + (f"; {', '.join(ended)}" if ended else ", all finished")
            lines.append(done)
        else:
            kind = f" drawn by the {self.search} search" if self.search else ""
            lines.append(f"{self.with_rows} of {total} trials{kind} have rows, {self.finished} finished")
        if self.missing_count:
            names = f": {_listed(self.missing)}" if self.missing else " (proposed as the search goes)"
            lines.append(f"{self.missing_count} of {total} trials have no rows yet{names}")
        if self.unfinished:
            lines.append(f"{len(self.unfinished)} unfinished (last round so far): "
                         + _listed([f"{name} ({last}/{rounds})" for name, last, rounds in self.unfinished]))
        if self.stopped:
            lines.append(f"{len(self.stopped)} stopped early by ASHA (at round): "
                         + _listed([f"{name} ({last}/{rounds})" for name, last, rounds in self.stopped]))
        if self.diverged:
            lines.append(f"{len(self.diverged)} diverged (stopped, no final accuracy): "
                         + _listed([f"{name} at round {at} ({what})" for name, at, what in self.diverged]))
        if self.strangers:
            lines.append(f"{len(self.strangers)} trials with rows are not in {RECORD_NAME} (from an earlier version "
                         f"of the sweep or other overrides; the figures include them): {_listed(self.strangers)}")
        return lines


def sweep_progress(results_dir: str | os.PathLike[str] | Location, rounds: pd.DataFrame | None = None) -> Progress:
    """Compare the sweep's recorded trial list with the rows written so far (``rounds``: already loaded)."""
    results_dir = Location(results_dir)
    if rounds is None:
        try:
            rounds = load_rounds(results_dir)
        except FileNotFoundError:
            rounds = pd.DataFrame(columns=["trial", "round", "train.rounds"])
    record = read_record(results_dir)
    stopped = _stopped(results_dir)
    progress = Progress(where=str(results_dir))
    last = rounds.groupby("trial")["round"].max() if len(rounds) else pd.Series(dtype=int)
    planned = rounds.groupby("trial")["train.rounds"].first() if len(rounds) else pd.Series(dtype=int)
    names_known = record is not None and record.names_known
    if record is not None and names_known:
        progress.strangers = sorted(set(last.index) - set(record.trials))
    diverged = _diverged(rounds)
    for trial in sorted(set(last.index) - set(progress.strangers)):
        at, of = int(last[trial]), int(planned[trial])
        if trial in diverged:
            progress.diverged.append((trial, at, diverged[trial]))
        elif at >= of:
            progress.finished += 1
        elif trial in stopped:
            progress.stopped.append((trial, at, of))
        else:
            progress.unfinished.append((trial, at, of))
    progress.with_rows = len(last) - len(progress.strangers)
    if record is None:
        return progress
    progress.search = record.search["algorithm"] if record.search is not None else None
    progress.expected = record.trial_count
    if names_known:
        progress.missing = [name for name in record.trials if name not in last.index]
    progress.missing_count = len(progress.missing) if names_known else max(0, progress.expected - progress.with_rows)
    return progress


def stopped_record(results_dir: str | os.PathLike[str] | Location, trial: str) -> Location:
    """Where the note that ASHA stopped ``trial`` early lives (written by runner/study/tune_search.py)."""
    return stopped_file(results_dir, trial)


def _stopped(results_dir: Location) -> set[str]:
    try:
        return {path.name.removesuffix(".json") for path in stopped_dir(results_dir).files(".json")}
    except FileNotFoundError:
        return set()


def _diverged(rounds: pd.DataFrame) -> dict[str, str]:
    """The trials whose last row says they diverged, and what was not finite."""
    if "diverged" not in rounds or not len(rounds):
        return {}
    marked = rounds[rounds["diverged"].notna()]
    return dict(zip(marked["trial"], marked["diverged"]))


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:LISTED])
    return shown + (f", and {len(names) - LISTED} more" if len(names) > LISTED else "")
