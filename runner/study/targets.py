"""Target accuracies: the first round, and the cumulative GB, at which a trial's test accuracy reaches them.

Table 3 reports, beside the accuracy after the last round, the number of rounds each method needs to reach a target
accuracy, and Figure 3g the transferred GB to reach the same target. A sweep file names its targets::

    targets:                                         # optional
      - {accuracy: 0.80, data.partition: iid}        # the target of the trials with data.partition iid
      - {accuracy: 0.65, data.partition: dirichlet}  # config fields narrow a target to some trials; none: all

A trial reaches a target at its first evaluated round whose test accuracy is at least the target (one round
suffices, as in the paper's "rounds to reach"); the GB are its cumulative bytes (download + upload) after that
round. Over seeds, a group's rounds and GB are the means of its seeds' when every seed reached the target, and
"not reached" otherwise (with how many seeds did). ``runner.plot`` writes them into tables.md
(runner/study/tables.py) and marks them on Figure 3 (runner/study/figures.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from runner.study.results import BYTES_PER_GB

ACCURACY_KEY = "accuracy"


class TargetError(ValueError):
    """The ``targets:`` section is wrong; the message names the entry and the key (the sweep file adds its path)."""


@dataclass(frozen=True)
class Target:
    """A test accuracy to reach (a fraction), for the trials whose config has the values in ``where``."""

    accuracy: float
    where: dict[str, Any] = field(default_factory=dict)  # dotted config field -> value

    def applies(self, flat: Mapping[str, Any]) -> bool:
        """Whether a trial with this flat config (or a row of its results) has this target."""
        return all(_same(flat.get(key), value) for key, value in self.where.items())

    def label(self) -> str:
        return f"{100 * self.accuracy:g}%"

    def to_dict(self) -> dict[str, Any]:
        return {ACCURACY_KEY: self.accuracy, **self.where}


@dataclass(frozen=True)
class Reached:
    """Where one trial first reached a target, or ``round`` None: not within its rows."""

    round: int | None
    gb: float | None


def parse_targets(raw: Any, fields: Mapping[str, Any]) -> list[Target]:
    """Check a sweep file's ``targets:`` list; ``fields`` are the config's dotted fields."""
    if not isinstance(raw, list) or not raw:
        raise TargetError(f"targets: expected a list of {{accuracy: 0.8, <config field>: <value>, ...}}, got {raw!r}")
    targets: list[Target] = []
    for index, entry in enumerate(raw):
        where = f"targets[{index}]"
        if not isinstance(entry, Mapping) or ACCURACY_KEY not in entry:
            raise TargetError(f"{where}: expected a mapping with an accuracy (a fraction, e.g. 0.8), got {entry!r}")
        accuracy = entry[ACCURACY_KEY]
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 < accuracy < 1:
            raise TargetError(f"{where}.accuracy: must be a fraction in (0, 1) (0.8 for 80 %), got {accuracy!r}")
        selectors = {key: value for key, value in entry.items() if key != ACCURACY_KEY}
        for key, value in selectors.items():
            if key not in fields:
                raise TargetError(f"{where}.{key}: not a config field (a target is narrowed by config fields)")
            if isinstance(value, (Mapping, list)):
                raise TargetError(f"{where}.{key}: expected a single value, got {value!r}")
        target = Target(float(accuracy), dict(selectors))
        if target in targets:
            raise TargetError(f"{where}: listed twice")
        targets.append(target)
    return targets


def reached(rows: pd.DataFrame, accuracy: float) -> Reached:
    """The first evaluated round of one trial's rows (any order) whose test accuracy is at least ``accuracy``."""
    rows = rows.sort_values("round")
    hits = rows[rows["test_accuracy"] >= accuracy]  # NaN (a round not evaluated) never reaches
    if hits.empty:
        return Reached(None, None)
    first = hits.iloc[0]
    return Reached(int(first["round"]), float(first["cumulative_bytes"]) / BYTES_PER_GB)


def over_seeds(per_seed: list[Reached]) -> dict[str, Any]:
    """A group's numbers for one target: mean rounds and GB when every seed reached it, else NaN; and each seed's
    round ("–" where it did not reach it), in the order given."""
    rounds = [r.round for r in per_seed if r.round is not None]
    gbs = [r.gb for r in per_seed if r.gb is not None]
    every = bool(per_seed) and len(rounds) == len(per_seed)
    return {"rounds_to_target": sum(rounds) / len(rounds) if every else math.nan,
            "gb_to_target": sum(gbs) / len(gbs) if every else math.nan,
            "seeds_reached": len(rounds), "seeds": len(per_seed),
            "rounds_per_seed": ", ".join("–" if r.round is None else str(r.round) for r in per_seed)}


def _same(have: Any, want: Any) -> bool:
    if isinstance(want, float) or isinstance(have, float):
        try:
            return math.isclose(float(have), float(want))
        except (TypeError, ValueError):
            return False
    return bool(have == want)
