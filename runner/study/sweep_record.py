"""What a sweep was started with, kept beside its results, so that ``--resume`` can say what it changes.

``<results>/<sweep>/sweep.json`` is the one record of a sweep's trials: the sweep file, the command-line
overrides, ``--max-concurrent`` and ``--max-failures``, and every trial's flat config, written (through
runner/engine/storage.py: a path or a URI) each time the sweep starts. Readers (``runner.plot`` on a partial
sweep) use :func:`read_record`. On ``--resume`` the command's own trials are compared with it:

- a change to what a trial *is* (any field outside ``logging.*`` and ``resources.*``: those make up the trial's
  name and checkpoint) would resume trials from checkpoints of other trials, or start new ones beside the old:
  it is refused, naming the override (or the sweep file, or the field) that makes it;
- ``--max-concurrent``, ``--max-failures`` and ``logging.*`` / ``resources.*`` settings are honored: the sweep
  runs a fresh Tune experiment over the same trials with them (runner/study/tune_sweep.py), and each trial
  continues from its own checkpoint. :func:`check_resume` lists them, to be printed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from runner.config import ADDED_FIELDS, TrialConfig
from runner.engine.storage import Location
from runner.results_layout import SWEEP_RECORD, record_file
from runner.study.sweep_expand import LoadedSweep
from runner.study.sweep_file import RUNNER_OWNED, Sweep, SweepError
from runner.trial_identity import is_run_setting

RECORD_NAME = SWEEP_RECORD  # the name's home: runner/results_layout.py
FORMAT = 1


@dataclass(frozen=True)
class SweepRecord:
    """One start of a sweep. ``trials`` maps each trial name to its flat config (dotted keys, JSON values)."""

    sweep: str
    source: str                                   # the sweep file it was read from
    overrides: dict[str, Any]                     # key -> value, as parsed from key=value
    max_concurrent: int | None
    max_failures: int
    trials: dict[str, dict[str, Any]] = field(default_factory=dict)
    format: int = FORMAT
    # a search sweep: algorithm, seed, samples, how many trials in all ("trials"), the drawn keys ("drawn");
    # ``trials`` above then holds a random search's seeded draws, or Optuna's grid point (it names none up front)
    search: dict[str, Any] | None = None
    targets: list[dict[str, Any]] = field(default_factory=list)  # the sweep file's target accuracies, as written

    @classmethod
    def of(cls, sweep: str, source: str, overrides: Mapping[str, Any], trials: list[TrialConfig], *,
           max_concurrent: int | None, max_failures: int, search: Mapping[str, Any] | None = None,
           targets: list[dict[str, Any]] | None = None) -> SweepRecord:
        return cls(sweep, source, _json(dict(overrides)), max_concurrent, max_failures,
                   {t.trial_name: _json(t.flat()) for t in trials}, search=_json(search), targets=_json(targets or []))

    @property
    def trial_count(self) -> int:
        """How many trials the sweep runs (a search's, though Optuna's are not named in ``trials``)."""
        return len(self.trials) if self.search is None else int(self.search["trials"])

    @property
    def names_known(self) -> bool:
        """Whether ``trials`` names every trial the sweep runs (not so for Optuna, which proposes them)."""
        return self.search is None or self.search["algorithm"] == "random"

    def write(self, results_dir: str | Location) -> None:
        text = json.dumps(asdict(self), indent=1)
        record_file(results_dir).write_bytes(text.encode())


def read_record(results_dir: str | Location) -> SweepRecord | None:
    """The record of the sweep's last start in ``results_dir`` (``<results>/<sweep>``), or None without one."""
    where = record_file(results_dir)
    if not where.exists():
        return None
    raw = json.loads(where.read_bytes())
    trials = {name: {**ADDED_FIELDS, **flat} for name, flat in raw["trials"].items()}  # as the trials ran
    return SweepRecord(raw["sweep"], raw["source"], raw["overrides"], raw["max_concurrent"], raw["max_failures"],
                       trials, raw.get("format", FORMAT), raw.get("search"), raw.get("targets", []))


def check_resume(started: SweepRecord, now: SweepRecord) -> list[str]:
    """Refuse (:class:`SweepError`) a resume whose trials are not those of the run it resumes, naming why;
    else the settings that differ from that run's start, one line each (they apply from now on)."""
    gone = [name for name in started.trials if name not in now.trials]
    new = [name for name in now.trials if name not in started.trials]
    if gone or new:
        raise SweepError(_what_changes_trials(started, now, len(gone), len(new)))
    identity = _changed_keys(started, now, settings=False)  # trials named in the sweep file keep their name
    if identity:
        key, count = next(iter(identity.items()))
        by = _override_of(key, started, now)
        raise SweepError(f"{by or key} changes {key} of {count} of the {len(now.trials)} trials of the run being "
                         f"resumed (it is part of what a trial is, not how it runs); start a new --results"
                         + (" or drop it" if by else " or restore the sweep file"))
    notes = []
    for flag, before, after in (("--max-concurrent", started.max_concurrent, now.max_concurrent),
                                ("--max-failures", started.max_failures, now.max_failures)):
        if before != after:
            notes.append(f"{flag} {_show(after, 'none')} (the run started with {_show(before, 'none')})")
    for key, count in _changed_keys(started, now, settings=True).items():
        values = sorted({_show(now.trials[n].get(key)) for n in now.trials})
        notes.append(f"{key}={'|'.join(values)} for {count} of {len(now.trials)} trials "
                     f"(the unfinished ones continue with it)")
    return notes


def _changed_keys(started: SweepRecord, now: SweepRecord, *, settings: bool) -> dict[str, int]:
    """Dotted key -> how many trials it differs in; only ``logging.*``/``resources.*`` keys, or only the others."""
    changed: dict[str, int] = {}
    for name, flat in now.trials.items():
        before = started.trials[name]
        for key in sorted(set(flat) | set(before)):
            if key in RUNNER_OWNED or is_run_setting(key) != settings:
                continue
            if flat.get(key) != before.get(key):
                changed[key] = changed.get(key, 0) + 1
    return changed


def _override_of(key: str, started: SweepRecord, now: SweepRecord) -> str:
    """``key=value`` when the command line's override of ``key`` differs from the run's, else ""."""
    if key in now.overrides and now.overrides[key] != started.overrides.get(key, object()):
        return f"{key}={_show(now.overrides[key])}"
    if key in started.overrides and key not in now.overrides:
        return f"dropping {key}={_show(started.overrides[key])}"
    return ""


def _what_changes_trials(started: SweepRecord, now: SweepRecord, gone: int, new: int) -> str:
    total = len(started.trials)
    affected = f"the {total} trials" if gone == total else f"{gone} of the {total} trials" if gone else "the trials"
    given = [f"{key}={_show(value)}" for key, value in now.overrides.items()
             if not is_run_setting(key) and (key not in started.overrides or started.overrides[key] != value)]
    dropped = [f"{key}={_show(value)}" for key, value in started.overrides.items()
               if not is_run_setting(key) and key not in now.overrides]
    if given:
        return (f"{', '.join(given)} {'changes' if len(given) == 1 else 'change'} {affected} of the run being resumed"
                + (f" (and {new} would be new)" if new and gone != new else "")
                + f"; start a new --results or drop {'it' if len(given) == 1 else 'them'}")
    if dropped:
        them = "it" if len(dropped) == 1 else "them"
        return (f"the run being resumed was started with {', '.join(dropped)}: without {them} {affected} would "
                f"change; pass {them} again, or start a new --results")
    return (f"{now.source} changed since the run being resumed started with {started.source}: "
            f"{gone} of its {total} trials are gone, {new} are new; restore the file or start a new --results")


def _json(value: Any) -> Any:
    """As JSON reads it back (tuples become lists), so a record compares equal to its own reading."""
    return json.loads(json.dumps(value, default=str))


def _show(value: Any, none: str = "null") -> str:
    if value is None:
        return none
    return str(yaml.safe_dump(value, default_flow_style=True, width=1_000)).removesuffix("\n...\n").strip()


def record_for(loaded: LoadedSweep, *, max_concurrent: int | None, max_failures: int) -> SweepRecord:
    """The record of starting ``loaded`` (a sweep file with its overrides and trials) now."""
    sweep = loaded.sweep
    return SweepRecord.of(sweep.name, sweep.source, loaded.overrides, planned_trials(loaded),
                          max_concurrent=max_concurrent, max_failures=max_failures,
                          search=search_summary(sweep, len(loaded.trials)),
                          targets=[target.to_dict() for target in sweep.targets])


def planned_trials(loaded: LoadedSweep) -> list[TrialConfig]:
    """The trials sweep.json names: a grid's, a random search's seeded draws (the same on every start, so a
    resume compares them like a grid's); Optuna's are proposed as it runs: its grid point stands for them."""
    if loaded.sweep.search is None:
        return loaded.trials
    from runner.study.tune_search import drawn_trials

    return drawn_trials(loaded.sweep, loaded.results_root) or loaded.trials


def search_summary(sweep: Sweep, points: int) -> dict[str, Any] | None:
    """What sweep.json says of a search: its algorithm, seed, samples and how many trials it runs in all."""
    search = sweep.search
    if search is None:
        return None
    return {"algorithm": search.algorithm, "seed": search.seed, "samples": search.samples,
            "trials": search.trials(points), "drawn": list(search.space)}
