"""The Tune objects that run a search sweep (runner/study/search.py reads what the file asks for).

:func:`tune_search` gives the extra ``TuneConfig`` arguments: nothing for a grid sweep; for a search sweep
the searcher (Tune's seeded random sampler, or Optuna), the number of samples, the metric and mode, and the
ASHA scheduler if asked for. ASHA here is :class:`AshaPerPoint`: one ASHA per grid point, so a trial is only
ever compared with the other draws of its own point (tuning the lr per gamma never stops a small model for
being small). It judges evaluated rounds only: the study's Report sink hands Tune evaluated rounds alone
(runner/study/trial.py), and its time attribute is our ``round``, so rungs and ``grace_period`` are in rounds.
A trial ASHA stops before its last round leaves ``<results>/<sweep>/stopped/<trial>.json``, so a plot can
tell it from one still running (runner/study/progress.py).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from runner.config import TrialConfig
from runner.study.progress import stopped_record
from runner.study.sweep_expand import BASE_KEY, param_space, trial_config_from_tune
from runner.study.sweep_file import Sweep

log = logging.getLogger(__name__)
TIME_ATTR = "round"  # ASHA's clock: the trial's round, reported on evaluated rounds only


def tune_search(sweep: Sweep, trials: list[TrialConfig], max_concurrent: int | None = None) -> dict[str, Any]:
    """``tune.TuneConfig`` arguments for the sweep: for a grid sweep only ``max_concurrent_trials``."""
    search = sweep.search
    if search is None:
        return {"max_concurrent_trials": max_concurrent}
    options: dict[str, Any] = {"num_samples": search.samples, "metric": search.metric, "mode": search.mode}
    if search.algorithm == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        options["search_alg"] = OptunaSearch(seed=search.seed)  # a Searcher: Tune limits its concurrency
        options["max_concurrent_trials"] = max_concurrent
    else:
        from ray.tune.search import BasicVariantGenerator

        # Tune ignores max_concurrent_trials (with a warning) for a generator it is handed: it takes its own.
        options["search_alg"] = BasicVariantGenerator(random_state=search.seed, max_concurrent=max_concurrent or 0)
    if search.asha is not None:
        options["scheduler"] = AshaPerPoint(
            grace_period=search.asha.grace_period, reduction_factor=search.asha.reduction_factor,
            max_t=search.asha.horizon(max(trial.train.rounds for trial in trials)), searched=list(search.space))
    return options


def drawn_trials(sweep: Sweep, results_root: str) -> list[TrialConfig] | None:
    """The trials a random search will run, in Tune's order: its seeded draws are known before it starts (so
    ``sweep.json`` names them, and a resumed or restarted sweep runs the same ones); None for Optuna, whose
    proposals depend on the results. Draws as Tune's ``BasicVariantGenerator(random_state=seed)`` does: each
    sample resolves the whole space (every grid point) from one generator (tests/study/test_search.py checks a run)."""
    search = sweep.search
    if search is None or search.algorithm != "random":
        return None
    from ray.tune.search.sample import _BackwardsCompatibleNumpyRng
    from ray.tune.search.variant_generator import generate_variants

    rng = _BackwardsCompatibleNumpyRng(search.seed)
    space = {"config": param_space(sweep, results_root=results_root)}
    return [trial_config_from_tune(spec["config"]) for _ in range(search.samples)
            for _, spec in generate_variants(space, random_state=rng)]


def draws_per_point(sweep: Sweep, points: list[TrialConfig], results_root: str) -> list[list[TrialConfig]] | None:
    """A random search's draws, grouped by grid point (in ``points``' order); None for a grid or Optuna."""
    drawn = drawn_trials(sweep, results_root)
    if drawn is None or sweep.search is None:
        return None
    searched = set(sweep.search.space)

    def fixed(cfg: TrialConfig) -> str:
        return json.dumps({k: v for k, v in cfg.flat().items() if k not in searched}, sort_keys=True, default=str)

    index = {fixed(point): i for i, point in enumerate(points)}
    groups: list[list[TrialConfig]] = [[] for _ in points]
    for cfg in drawn:
        groups[index[fixed(cfg)]].append(cfg)
    return groups


def stopped_early(cfg: TrialConfig) -> bool:
    """Whether ASHA stopped this trial in an earlier run of the sweep (a rerun leaves it stopped)."""
    return stopped_record(cfg.logging.results_dir, cfg.trial_name).exists()


def point_of(config: dict[str, Any], searched: list[str]) -> str:
    """A trial's grid point: its Tune config less the drawn settings (and the base, the same for all)."""
    return json.dumps({k: v for k, v in config.items() if k not in searched and k != BASE_KEY},
                      sort_keys=True, default=str)


class AshaPerPoint(FIFOScheduler):
    """Asynchronous successive halving, one instance per grid point; records the trials it stops early."""

    def __init__(self, *, grace_period: int, max_t: int, reduction_factor: float, searched: list[str]) -> None:
        super().__init__()
        self.grace_period, self.max_t, self.reduction_factor = grace_period, max_t, reduction_factor
        self.searched = searched
        self._metric: str | None = None
        self._mode: str | None = None
        self._points: dict[str, AsyncHyperBandScheduler] = {}
        self._point_of_trial: dict[str, str] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False
        self._metric, self._mode = metric or self._metric, mode or self._mode
        return True

    def _asha(self, trial: Any) -> AsyncHyperBandScheduler:
        point = self._point_of_trial.setdefault(trial.trial_id, point_of(trial.config, self.searched))
        if point not in self._points:
            self._points[point] = AsyncHyperBandScheduler(
                time_attr=TIME_ATTR, metric=self._metric, mode=self._mode, max_t=self.max_t,
                grace_period=self.grace_period, reduction_factor=self.reduction_factor)
        return self._points[point]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._asha(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        action = self._asha(trial).on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP:
            cfg = trial_config_from_tune(trial.config)
            if int(result[TIME_ATTR]) >= cfg.train.rounds:
                # its last round: it ends by itself once its last checkpoint is saved (Tune reports a row before
                # the checkpoint; stopping here would kill it first, and a rerun would redo the round)
                return TrialScheduler.CONTINUE
            self._record_stop(cfg, result)
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        asha = self._asha(trial)
        if trial.trial_id in asha._trial_info:  # ASHA forgets a trial once told it completed
            asha.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        asha = self._asha(trial)
        if trial.trial_id in asha._trial_info:
            asha.on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._asha(trial).on_trial_error(tune_controller, trial)

    def debug_string(self) -> str:
        return (f"ASHA per grid point ({len(self._points)} points): grace period {self.grace_period} rounds, "
                f"max_t {self.max_t}, reduction factor {self.reduction_factor:g}")

    def _record_stop(self, cfg: TrialConfig, result: dict[str, Any]) -> None:
        stopped_at = int(result[TIME_ATTR])
        record = {"trial": cfg.trial_name, "round": stopped_at, "rounds": cfg.train.rounds,
                  "metric": self._metric, "value": result.get(self._metric or ""), "by": "ASHA"}
        try:
            stopped_record(cfg.logging.results_dir, cfg.trial_name).write_bytes(json.dumps(record).encode())
        except OSError as error:  # the trial stops all the same; only the plot's note is lost
            log.warning("could not record that ASHA stopped %s at round %d: %s", cfg.trial_name, stopped_at, error)
