"""The console during a sweep: a few lines every N seconds instead of Tune's full result table.

A long sweep (fig4: 40 trials, hours) needs to say how far it is, not every trial's latest metrics: how many
trials are done, running and pending, which round each running trial is in, and when the sweep should end.
Tune calls this reporter from its loop (``RunConfig(progress_reporter=...)``; runner/study/tune_sweep.py keeps
Tune on its classic console output, where a reporter is honored, with ``verbose=1`` so no per-trial result
dicts are logged). The ETA assumes the rounds still to run take as long as this run's rounds took so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ray.tune import ProgressReporter

from runner.study.sweep_expand import trial_config_from_tune

DEFAULT_EVERY_S = 30.0
STATES = (("TERMINATED", "done"), ("RUNNING", "running"), ("PENDING", "pending"), ("PAUSED", "paused"),
          ("ERROR", "errored"))


class SweepProgress(ProgressReporter):
    """Prints :func:`progress_block` at most every ``every_s`` seconds, and once at the end."""

    def __init__(self, sweep: str, every_s: float = DEFAULT_EVERY_S, rounds: Mapping[str, int] | None = None, *,
                 expected: tuple[int, int] | None = None, done_before: Mapping[str, int] | None = None,
                 clock: Callable[[], float] | None = None, write: Callable[[str], None] | None = None) -> None:
        # Tune pickles the reporter with the experiment: the defaults are looked up when used, not stored
        # (Ray 2.41 with W&B 0.17 refused to pickle a stored builtins.print)
        self.sweep, self.every_s, self._clock, self._write = sweep, every_s, clock, write
        self.started: float | None = None  # set at the first call (a restored experiment unpickles this)
        self.last: float | None = None
        self.rounds = dict(rounds or {})  # every trial of the sweep: Tune creates them lazily under --max-concurrent
        # rounds each trial had written before this run started (a resume): counted as done from the first line,
        # and not as this run's work in the ETA
        self.first_round: dict[str, int] = dict(done_before or {})
        self.expected = expected  # (trials, rounds each) when the trials are not named up front (Optuna)

    def clock(self) -> float:
        return (self._clock or time.monotonic)()

    def write(self, text: str) -> None:
        (self._write or print)(text)

    def should_report(self, trials: Sequence[Any], done: bool = False) -> bool:
        now = self.clock()
        if self.started is None:
            self.started = now
        return done or self.last is None or now - self.last >= self.every_s

    def report(self, trials: Sequence[Any], done: bool, *sys_info: str) -> None:
        self.last = self.clock()
        if self.started is None:
            self.started = self.last
        views = [TrialView.of(trial) for trial in trials]
        for view in views:  # a resumed trial has its earlier rounds before it reports again
            view.round = max(view.round, self.first_round.get(view.name, 0))
            if view.status == "PENDING" and view.round >= view.rounds:
                view.status = "TERMINATED"  # finished in an earlier run: Tune only has to hand it its result
        seen = {view.name for view in views}
        for name, rounds in self.rounds.items():
            if name not in seen:  # not handed to Tune yet: done in an earlier run, or pending
                before = self.first_round.get(name, 0)
                views.append(TrialView(name, "TERMINATED" if before >= rounds else "PENDING", before, rounds))
        if self.expected is not None:  # trials not proposed yet
            count, rounds_each = self.expected
            views += [TrialView(f"(not proposed yet {i})", "PENDING", 0, rounds_each)
                      for i in range(count - len(views))]
        self.write(progress_block(self.sweep, views, self.last - self.started, self.first_round, done))


class TrialView:
    """What the console shows of one Tune trial: its name, state, last reported round and round count."""

    def __init__(self, name: str, status: str, round: int, rounds: int) -> None:
        self.name, self.status, self.round, self.rounds = name, status, round, rounds

    @classmethod
    def of(cls, trial: Any) -> TrialView:
        cfg = trial_config_from_tune(trial.config)
        last = trial.last_result or {}
        done = trial.status == "TERMINATED"
        return cls(cfg.trial_name, trial.status, cfg.train.rounds if done else int(last.get("round") or 0),
                   cfg.train.rounds)


def progress_block(sweep: str, trials: Sequence[TrialView], elapsed_s: float,
                   first_round: Mapping[str, int], done: bool = False) -> str:
    """``fig4 [12m03s]: 3 done, 2 running, 35 pending | rounds 710/8000 | ETA 2h05m`` then one line per
    running trial: ``  running <trial> round 14/200``."""
    counts = {label: sum(t.status == state for t in trials) for state, label in STATES}
    states = ", ".join(f"{n} {label}" for label, n in counts.items() if n or label in ("done", "running", "pending"))
    rounds_done = sum(t.round for t in trials)
    rounds_all = sum(t.rounds for t in trials)
    ran = sum(t.round - first_round.get(t.name, 0) for t in trials if t.status != "ERROR")
    left = sum(t.rounds - t.round for t in trials if t.status != "ERROR")
    eta = "-" if done or ran <= 0 else duration(elapsed_s / ran * left)
    head = f"{sweep} [{duration(elapsed_s)}]: {states} | rounds {rounds_done}/{rounds_all} | " + (
        "finished" if done else f"ETA {eta}")
    running = [f"  running {t.name} round {t.round}/{t.rounds}" for t in trials if t.status == "RUNNING"]
    return "\n".join([head, *running])


def duration(seconds: float) -> str:
    """``7384`` -> ``2h03m``; ``65`` -> ``1m05s``; ``4.2`` -> ``4s``."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"
