"""What a sweep file's ``search:`` asks for: Tune samples some settings instead of listing them.

A grid sweep lists every trial. A search sweep names a space instead, and Tune draws the trials::

    search:
      algorithm: random          # random: Tune's own sampler; optuna: Optuna's TPE (pip install optuna)
      samples: 8                 # random: draws per grid point; optuna: trials in all
      seed: 0                    # the sampler's seed: the same file draws the same values
      metric: val_accuracy       # what the searcher and the scheduler compare (val_loss, train_loss: mode min);
                                 # val_*: on data.validation_fraction of the clients' training samples, never
                                 # the test set (a test metric is refused)
      mode: max
      space:                     # float config fields only; a discrete choice belongs in the grid
        train.lr: {loguniform: [0.01, 0.3]}
      scheduler:                 # optional: stop poor trials early
        asha: {grace_period: 5, max_t: 200, reduction_factor: 4}   # in rounds; max_t: the trials' rounds

Random search crosses with the grid and the variants (each grid point gets ``samples`` draws: tune the lr per
gamma); Optuna proposes every trial itself, so its sweep has one grid point. ASHA compares a trial only with
the other draws of its own grid point, at evaluated rounds. This module only reads and checks the section
(errors name ``search.<key>``); runner/study/tune_search.py builds the Tune objects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runner.config import hint_options

ALGORITHMS = ("random", "optuna")
DOMAINS = ("uniform", "loguniform")
METRICS = {"val_accuracy": "max", "val_loss": "min", "train_loss": "min"}  # what a trial reports, its best mode
VALIDATION_METRICS = ("val_accuracy", "val_loss")  # need data.validation_fraction > 0 in every trial
SEARCH_KEYS = ("algorithm", "samples", "seed", "metric", "mode", "space", "scheduler")
ASHA_KEYS = ("grace_period", "max_t", "reduction_factor")


class SearchError(ValueError):
    """The ``search:`` section is wrong; the message names the key (the sweep file adds its path)."""


@dataclass(frozen=True)
class Domain:
    """Where one setting is drawn from: uniformly, or uniformly in log space, between ``low`` and ``high``."""

    kind: str
    low: float
    high: float

    def text(self) -> str:
        return f"{self.kind}({self.low:g}, {self.high:g})"

    def tune_domain(self) -> Any:
        from ray import tune

        return (tune.loguniform if self.kind == "loguniform" else tune.uniform)(self.low, self.high)


@dataclass(frozen=True)
class Asha:
    """Asynchronous successive halving on the search metric, in rounds (``max_t`` None: the trials' rounds)."""

    grace_period: int = 1
    max_t: int | None = None
    reduction_factor: float = 4.0

    def horizon(self, max_rounds: int) -> int:
        """ASHA's max_t: as set, or the longest trial's rounds."""
        return self.max_t or max_rounds

    def rungs(self, max_t: int) -> list[int]:
        """The rounds at which ASHA compares a trial with the others of its grid point."""
        count = int(math.log(max_t / self.grace_period) / math.log(self.reduction_factor) + 1)
        return [round(self.grace_period * self.reduction_factor ** k) for k in range(count)]


@dataclass(frozen=True)
class Search:
    algorithm: str
    samples: int
    space: dict[str, Domain]
    seed: int = 0
    metric: str = "val_accuracy"
    mode: str = "max"
    asha: Asha | None = None

    def describe(self, points: int, max_rounds: int) -> list[str]:
        """What the sweep will do, for ``--dry-run`` (its trials are drawn as it runs)."""
        if self.algorithm == "random":
            size = f"{self.samples} draws per grid point x {points} grid points = {self.trials(points)} trials"
        else:
            size = f"{self.samples} trials, each proposed by Optuna (TPE) from the results so far"
        lines = [f"search: {self.algorithm}, {size} (seed {self.seed}), comparing {self.metric} ({self.mode})",
                 *(f"  {key} ~ {domain.text()}" for key, domain in self.space.items())]
        if self.asha is not None:
            max_t = self.asha.horizon(max_rounds)
            lines.append(f"  ASHA early stopping on {self.metric} at evaluated rounds, each trial against the "
                         f"draws of its own grid point: grace period {self.asha.grace_period} rounds, max_t {max_t}, "
                         f"reduction factor {self.asha.reduction_factor:g} (rungs at rounds "
                         f"{', '.join(map(str, self.asha.rungs(max_t)))})")
        else:
            lines.append("  no scheduler: every trial runs all its rounds")
        lines.append("  the trial table lists the grid points, with the searched settings at their base values")
        return lines

    def trials(self, points: int) -> int:
        return self.samples * points if self.algorithm == "random" else self.samples


def parse_search(raw: Any, fields: Mapping[str, Any]) -> Search:
    """Check a sweep file's ``search:`` section; ``fields`` maps each config field to its Python type."""
    if not isinstance(raw, Mapping):
        raise SearchError(f"search: expected a mapping with keys {', '.join(SEARCH_KEYS)}, got {raw!r}")
    unknown = [key for key in raw if key not in SEARCH_KEYS]
    if unknown:
        raise SearchError(f"search: unknown key {unknown[0]!r} (valid: {', '.join(SEARCH_KEYS)})")
    algorithm = raw.get("algorithm", "random")
    if algorithm not in ALGORITHMS:
        raise SearchError(f"search.algorithm: unknown value {algorithm!r} (choose from {', '.join(ALGORITHMS)})")
    if algorithm == "optuna":
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise SearchError("search.algorithm: optuna needs the optuna package "
                              "(pip install 'fedpara-runner[search]', or pip install optuna)") from None
    samples = _positive_int(raw.get("samples"), "search.samples")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SearchError(f"search.seed: expected an int, got {seed!r}")
    metric = raw.get("metric", "val_accuracy")
    if isinstance(metric, str) and metric.startswith("test_"):
        raise SearchError(f"search.metric: {metric} would tune on the test set, whose accuracy the study reports; "
                          f"use {metric.replace('test_', 'val_')} (validation data held out of the clients' "
                          "training samples: data.validation_fraction)")
    if metric not in METRICS:
        raise SearchError(f"search.metric: unknown value {metric!r} (choose from {', '.join(METRICS)})")
    mode = raw.get("mode", METRICS[metric])
    if mode not in ("max", "min"):
        raise SearchError(f"search.mode: expected max or min, got {mode!r}")
    return Search(algorithm=algorithm, samples=samples, space=_space(raw.get("space"), fields), seed=seed,
                  metric=metric, mode=mode, asha=_scheduler(raw.get("scheduler")))


def _space(raw: Any, fields: Mapping[str, Any]) -> dict[str, Domain]:
    if not isinstance(raw, Mapping) or not raw:
        raise SearchError(f"search.space: expected a mapping of config fields to domains, e.g. "
                          f"train.lr: {{loguniform: [0.01, 0.3]}}, got {raw!r}")
    space: dict[str, Domain] = {}
    for key, spec in raw.items():
        where = f"search.space.{key}"
        if key not in fields:
            raise SearchError(f"{where}: not a config field")
        if float not in hint_options(fields[key]) or int in hint_options(fields[key]):
            raise SearchError(f"{where}: only float fields are searched (a discrete choice belongs in the grid, "
                              "where every value runs once)")
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise SearchError(f"{where}: expected one domain, e.g. {{loguniform: [0.01, 0.3]}}, got {spec!r}")
        [(kind, bounds)] = spec.items()
        if kind not in DOMAINS:
            raise SearchError(f"{where}: unknown domain {kind!r} (choose from {', '.join(DOMAINS)})")
        if (not isinstance(bounds, list) or len(bounds) != 2
                or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)):
            raise SearchError(f"{where}: {kind}: expected [low, high], got {bounds!r}")
        low, high = float(bounds[0]), float(bounds[1])
        if not low < high:
            raise SearchError(f"{where}: {kind}: low must be below high, got [{low:g}, {high:g}]")
        if kind == "loguniform" and low <= 0:
            raise SearchError(f"{where}: loguniform: low must be > 0, got {low:g}")
        space[key] = Domain(kind, low, high)
    return space


def _scheduler(raw: Any) -> Asha | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or list(raw) != ["asha"]:
        raise SearchError(f"search.scheduler: expected {{asha: {{grace_period: ..., max_t: ...}}}}, got {raw!r}")
    asha = raw["asha"] or {}
    if not isinstance(asha, Mapping):
        raise SearchError(f"search.scheduler.asha: expected a mapping with keys {', '.join(ASHA_KEYS)}, got {asha!r}")
    unknown = [key for key in asha if key not in ASHA_KEYS]
    if unknown:
        raise SearchError(f"search.scheduler.asha: unknown key {unknown[0]!r} (valid: {', '.join(ASHA_KEYS)})")
    grace = _positive_int(asha.get("grace_period", 1), "search.scheduler.asha.grace_period")
    max_t = asha.get("max_t")
    if max_t is not None:
        max_t = _positive_int(max_t, "search.scheduler.asha.max_t")
        if max_t < grace:
            raise SearchError(f"search.scheduler.asha.max_t: must be >= grace_period ({grace}), got {max_t}")
    factor = asha.get("reduction_factor", 4)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 1:
        raise SearchError(f"search.scheduler.asha.reduction_factor: must be a number > 1, got {factor!r}")
    return Asha(grace_period=grace, max_t=max_t, reduction_factor=float(factor))


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SearchError(f"{where}: expected an int >= 1, got {value!r}")
    return value

