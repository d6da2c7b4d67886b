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
the other draws of its own grid point, at evaluated rounds. This module only declares and checks the section
(its fields' rules with :func:`runner.settings.setting`, errors naming ``search.<key>``);
runner/study/tune_search.py builds the Tune objects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from runner.settings import ConfigError, build, hint_options, setting

ALGORITHMS = ("random", "optuna")
DOMAINS = ("uniform", "loguniform")
METRICS = {"val_accuracy": "max", "val_loss": "min", "train_loss": "min"}  # what a trial reports, its best mode
VALIDATION_METRICS = ("val_accuracy", "val_loss")  # need data.validation_fraction > 0 in every trial


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

    @classmethod
    def from_raw(cls, raw: Any, path: str) -> Domain:
        """``{loguniform: [0.01, 0.3]}``: written as one mapping entry, so it checks itself."""
        if not isinstance(raw, Mapping) or len(raw) != 1:
            raise ConfigError(f"{path}: expected one domain, e.g. {{loguniform: [0.01, 0.3]}}, got {raw!r}")
        [(kind, bounds)] = raw.items()
        if kind not in DOMAINS:
            raise ConfigError(f"{path}: unknown domain {kind!r} (choose from {', '.join(DOMAINS)})")
        if (not isinstance(bounds, list) or len(bounds) != 2
                or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)):
            raise ConfigError(f"{path}: {kind}: expected [low, high], got {bounds!r}")
        low, high = float(bounds[0]), float(bounds[1])
        if not low < high:
            raise ConfigError(f"{path}: {kind}: low must be below high, got [{low:g}, {high:g}]")
        if kind == "loguniform" and low <= 0:
            raise ConfigError(f"{path}: loguniform: low must be > 0, got {low:g}")
        return cls(kind, low, high)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        bounds = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2,
                  "description": "[low, high]"}
        return {"type": "object", "properties": dict.fromkeys(DOMAINS, bounds), "additionalProperties": False,
                "minProperties": 1, "maxProperties": 1, "description": " ".join((cls.__doc__ or "").split())}


@dataclass(frozen=True)
class Asha:
    """Asynchronous successive halving on the search metric, in rounds (``max_t`` None: the trials' rounds)."""

    grace_period: int = setting(1, ge=1)
    max_t: int | None = setting(None, ge=1, why="or null: the trials' rounds")
    reduction_factor: float = setting(4.0, gt=1)

    def horizon(self, max_rounds: int) -> int:
        """ASHA's max_t: as set, or the longest trial's rounds."""
        return self.max_t or max_rounds

    def rungs(self, max_t: int) -> list[int]:
        """The rounds at which ASHA compares a trial with the others of its grid point."""
        count = int(math.log(max_t / self.grace_period) / math.log(self.reduction_factor) + 1)
        return [round(self.grace_period * self.reduction_factor ** k) for k in range(count)]


@dataclass(frozen=True)
class Scheduler:
    """What stops poor trials early (``scheduler: {asha: {...}}``): ASHA, the one scheduler so far."""

    asha: Asha


@dataclass(frozen=True, kw_only=True)
class Search:
    """The ``search:`` section as written; :func:`parse_search` fills in ``mode`` from the metric."""

    algorithm: str = setting("random", choices=ALGORITHMS)
    samples: int = setting(ge=1, why="random: draws per grid point; optuna: trials in all")
    # required (no default), so no dict is shared between instances
    space: dict[str, Domain] = setting(  # noqa: RUF009
        nonempty=True, why="float config fields to domains, e.g. train.lr: {loguniform: [0.01, 0.3]}")
    seed: int = 0
    metric: str = setting("val_accuracy", choices=tuple(METRICS))
    mode: str | None = setting(None, choices=("max", "min"), why="or null: the metric's own")
    scheduler: Scheduler | None = None

    @property
    def asha(self) -> Asha | None:
        return self.scheduler.asha if self.scheduler is not None else None

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
    """Check a sweep file's ``search:`` section; ``fields`` maps each config field to its Python type.

    Each key's own rule is declared on :class:`Search`; the rules here relate a key to another, or to the config.
    """
    metric = raw.get("metric") if isinstance(raw, Mapping) else None
    if isinstance(metric, str) and metric.startswith("test_"):  # said before the list of metrics: why not
        raise ConfigError(f"search.metric: {metric} would tune on the test set, whose accuracy the study reports; "
                          f"use {metric.replace('test_', 'val_')} (validation data held out of the clients' "
                          "training samples: data.validation_fraction)")
    search: Search = build(Search, raw, "search")
    if search.algorithm == "optuna":
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise ConfigError("search.algorithm: optuna needs the optuna package "
                              "(pip install 'fedpara-runner[search]', or pip install optuna)") from None
    for key in search.space:
        if key not in fields:
            raise ConfigError(f"search.space.{key}: not a config field")
        if float not in hint_options(fields[key]) or int in hint_options(fields[key]):
            raise ConfigError(f"search.space.{key}: only float fields are searched (a discrete choice belongs in "
                              "the grid, where every value runs once)")
    asha = search.asha
    if asha is not None and asha.max_t is not None and asha.max_t < asha.grace_period:
        raise ConfigError(f"search.scheduler.asha.max_t: must be >= grace_period ({asha.grace_period}), "
                          f"got {asha.max_t}")
    return replace(search, mode=search.mode or METRICS[search.metric])
