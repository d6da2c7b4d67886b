"""A checked sweep (runner/study/sweep_file.py) expanded into the exact trials it stands for.

:func:`expand` gives the deterministic trial list (for ``--dry-run``, the record and validation), grid-major then
variant order; :func:`param_space` gives the same trials as a Tune search space, and :func:`merge_trial` turns one
Tune ``config`` back into a trial's nested config dict. Command-line overrides go into the base and win over the
grid and the variants (:func:`apply_overrides`); :func:`load_with_overrides` is where every command line starts.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from runner.config import ConfigError, TrialConfig, config_columns, flatten, unflatten
from runner.engine.storage import is_uri, join
from runner.study.sweep_file import (
    RUNNER_OWNED,
    Sweep,
    SweepError,
    check_expanded,
    check_override_keys,
    describe,
    is_axis_of_sets,
    load_sweep,
    parse_overrides,
)

BASE_KEY = "base"        # Tune config key holding the resolved base (a constant, not searched)
VARIANT_KEY = "variant"  # Tune config key holding one expanded variant (flat dotted dict)


@dataclass(frozen=True)
class LoadedSweep:
    """A sweep file with the command line's overrides applied, and its trials (what every CLI starts from)."""

    sweep: Sweep
    overrides: dict[str, Any]
    trials: list[TrialConfig]
    results_root: str  # a URI as given, or an absolute path: the same on every node


def load_with_overrides(path: str | Path, pairs: Iterable[str], results: str) -> LoadedSweep:
    """Load ``path``, apply the ``key=value`` pairs and expand the trials under the results root ``results``
    (raises :class:`SweepError` or :class:`ConfigError` naming what is wrong)."""
    root = results if is_uri(results) else str(Path(results).expanduser().resolve())
    overrides = parse_overrides(pairs)
    sweep = apply_overrides(load_sweep(path, check_trials=False), overrides)  # the trials are checked once, below
    return LoadedSweep(sweep, overrides, expand(sweep, results_root=root), root)


def apply_overrides(sweep: Sweep, overrides: Mapping[str, Any]) -> Sweep:
    """Put command-line overrides into ``base``; they win over the grid and the variants too.

    An overridden key is dropped from the grid and from every variant, so ``train.rounds=2`` shortens
    every trial of a sweep whose variants set per-dataset round counts. Variants that become equal
    are kept once.
    """
    if not overrides:
        return sweep
    check_override_keys(overrides, f"{sweep.source} (command-line override)")
    flat_base = flatten(sweep.base)
    flat_base.update(overrides)
    grid = _without_overridden(sweep.grid, overrides)
    variants: list[dict[str, Any]] = []
    for variant in sweep.variants:
        kept = _without_overridden(variant, overrides)
        if kept not in variants:
            variants.append(kept)
    if variants == [{}]:  # every variant only set overridden keys: nothing is left to vary
        variants = []
    search = sweep.search
    if search is not None:  # an overridden setting is no longer drawn; with none left, the sweep is a grid
        space = {key: domain for key, domain in search.space.items() if key not in overrides}
        search = replace(search, space=space) if space else None
    return replace(sweep, base=unflatten(flat_base), grid=grid, variants=variants, search=search)


def _without_overridden(axes: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A grid's or a variant's keys less the overridden ones; an axis of override sets keeps its sets less the
    overridden keys, and is dropped when nothing is left in them."""
    kept: dict[str, Any] = {}
    for key, value in axes.items():
        if is_axis_of_sets(key, value):
            sets = _without_keys(value, overrides)
            if sets != [{}]:
                kept[key] = sets
        elif key not in overrides:
            kept[key] = value
    return kept


def _without_keys(sets: list[Mapping[str, Any]], keys: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An axis's override sets less the given keys, each remaining set once."""
    kept: list[dict[str, Any]] = []
    for overrides_set in sets:
        kept_set = {k: v for k, v in overrides_set.items() if k not in keys}
        if kept_set not in kept:
            kept.append(kept_set)
    return kept


def grid_points(sweep: Sweep) -> list[dict[str, Any]]:
    """The grid's cross product in file order (one empty point when there is no grid)."""
    keys = list(sweep.grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(sweep.grid[k] for k in keys))]


def expand_variants(sweep: Sweep) -> list[dict[str, Any]]:
    """Each variant with its list values and override-set axes crossed out, in file order: one flat dict
    (dotted keys) per variant.

    Every dict names every key any variant sets (a key a variant leaves alone gets the base's value, if
    the base or the defaults have one: an algorithm's setting exists only for that algorithm), so each
    Tune trial's ``variant`` shows the full picture, e.g. in the progress table.
    """
    expanded: list[dict[str, Any]] = []
    for variant in sweep.variants:
        keys = list(variant)
        choices = [variant[k] if isinstance(variant[k], list) else [variant[k]] for k in keys]
        expanded.extend(flat_point(dict(zip(keys, combo))) for combo in itertools.product(*choices))
    keys = list(dict.fromkeys(key for variant in expanded for key in variant))
    inherited = {**TrialConfig().flat(), **flatten(sweep.base)}
    return [{key: variant[key] if key in variant else inherited[key]
             for key in keys if key in variant or key in inherited} for variant in expanded]


def resolved_flat_base(sweep: Sweep, results_root: str | Path = "results") -> dict[str, Any]:
    """The base every trial starts from, flat (dotted keys): the file's base plus the runner-owned fields."""
    flat = flatten(sweep.base)
    flat["logging.results_dir"] = join(results_root, sweep.name)  # a path or a URI (runner/engine/storage.py)
    flat["sweep"] = sweep.name
    return flat


def expand(sweep: Sweep, overrides: Mapping[str, Any] | None = None, *,
           results_root: str | Path = "results") -> list[TrialConfig]:
    """The sweep's trials, grid-major then variant order, each validated by TrialConfig.from_dict.

    A bad value raises :class:`SweepError` naming the sweep file, the dotted field, and the trial's
    grid/variant values; two trials that come out identical are an error too (they would share a
    results directory). For a search sweep these are its grid points, the searched settings at their
    base values (Tune draws the real ones); both ends of every searched range are validated at each point.
    """
    sweep = apply_overrides(sweep, overrides or {})
    flat_base = resolved_flat_base(sweep, results_root)  # flattened once, not once per trial
    base = unflatten(flat_base)
    variants: list[dict[str, Any] | None] = [*expand_variants(sweep)] or [None]
    trials: list[TrialConfig] = []
    seen: dict[str, dict[str, Any]] = {}
    for point in grid_points(sweep):
        for variant in variants:
            params = dict(point, **({VARIANT_KEY: variant} if variant is not None else {}))
            where = {**flat_point(point), **(variant or {})}
            try:
                config = TrialConfig.from_dict(unflatten(_merged_flat(flat_base, params)))
            except ConfigError as error:
                raise SweepError(f"{sweep.source}: {error} (in the trial with {describe(where)})") from None
            check_expanded(sweep, base, params, config, where)
            if config.trial_name in seen:
                raise SweepError(f"{sweep.source}: the trials with {describe(seen[config.trial_name])} and "
                                 f"{describe(where)} are identical ({config.trial_name})")
            seen[config.trial_name] = where
            trials.append(config)
    return trials


def merge_trial(base: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """One trial's nested config: ``base`` <- the dotted grid keys in ``params`` <- ``params["variant"]``.

    ``params`` is a Tune trial ``config`` (see :func:`param_space`); its ``"base"`` entry, if any, is
    ignored here because the caller passes the base explicitly.
    """
    return unflatten(_merged_flat(flatten(base), params))


def _merged_flat(flat_base: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`merge_trial` on a base already flat (dotted keys), flat too."""
    flat = dict(flat_base)
    for key, value in params.items():
        if key in (BASE_KEY, VARIANT_KEY):
            continue
        if isinstance(value, Mapping):  # one override set of a grid axis
            flat.update(value)
        else:
            flat[key] = value
    flat.update(params.get(VARIANT_KEY) or {})
    return flat


def trial_config_from_tune(params: Mapping[str, Any]) -> TrialConfig:
    """What ``runner.study.tune_sweep.tune_trainable`` needs: the validated config of one Tune trial."""
    return TrialConfig.from_dict(merge_trial(params[BASE_KEY], params))


def param_space(sweep: Sweep, overrides: Mapping[str, Any] | None = None, *,
                results_root: str | Path = "results") -> dict[str, Any]:
    """The Tune search space: each grid key a ``grid_search``, the expanded variants one more.

    The resolved base rides along as the constant ``"base"`` entry, so a Tune trial's ``config`` is
    self-contained (and survives ``Tuner.restore``): ``merge_trial(config["base"], config)``.
    """
    from ray import tune

    sweep = apply_overrides(sweep, overrides or {})
    space: dict[str, Any] = {BASE_KEY: unflatten(resolved_flat_base(sweep, results_root))}

    def axis(values: list[Any]) -> Any:
        """A search sweep names a single value as a constant: Optuna takes no grid_search, not even of one."""
        return values[0] if sweep.search is not None and len(values) == 1 else tune.grid_search(values)

    for key, values in sweep.grid.items():
        space[key] = axis(list(values))
    variants = expand_variants(sweep)
    if variants:
        space[VARIANT_KEY] = axis(variants)
    if sweep.search is not None:  # drawn by Tune; merge_trial puts them over the base and the grid
        space.update({key: domain.tune_domain() for key, domain in sweep.search.space.items()})
    return space


def trial_count(sweep: Sweep, points: int) -> int:
    """How many trials the sweep runs: its grid points, or for a search the draws Tune will make."""
    return points if sweep.search is None else sweep.search.trials(points)


def varying_keys(trials: list[TrialConfig]) -> list[str]:
    """Dotted fields whose value differs between trials, in config order (the columns worth showing)."""
    flats = [trial.flat() for trial in trials]
    if len(flats) < 2:
        return []
    return [key for key in config_columns() if key not in RUNNER_OWNED  # an algorithm's setting may be absent
            and len({repr(f.get(key, "(not read)")) for f in flats}) > 1]


def flat_point(point: Mapping[str, Any]) -> dict[str, Any]:
    """A grid point as dotted keys (an axis's override set spelled out)."""
    flat: dict[str, Any] = {}
    for key, value in point.items():
        flat.update(value if isinstance(value, Mapping) else {key: value})
    return flat
