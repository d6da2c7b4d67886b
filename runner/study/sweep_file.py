"""Sweep files: a study written once as YAML, expanded into the exact list of trials it stands for.

A sweep file (``sweeps/*.yaml``) has these top-level keys::

    name: fig4                 # results sub-directory and W&B group
    description: "..."         # which paper figure/table it reproduces, what varies
    base: {...}                # nested TrialConfig fields shared by every trial
    grid:                      # full cross product of its axes; an axis is either
      dotted.key: [...]        #   a config field and its values, or
      label: [{...}, ...]      #   a label and override sets (settings that go together)
    variants: [{...}, ...]     # a union of override sets, each crossed with the grid;
                               # a list value inside a variant is expanded (crossed) too, and so is
                               # a label with override sets (``split: [{data.partition: iid}, ...]``)
    search: {...}              # optional: Tune draws some settings instead (runner/study/search.py)
    targets: [{...}, ...]      # optional: test accuracies to reach, e.g. {accuracy: 0.8, data.partition: iid}
                               # (runner/study/targets.py: rounds and GB to reach them, in tables.md and Fig. 3)

A sweep is named by a path, or by the name of a shipped study (``fig4``, ``sweeps/fig4.yaml``): the files of the
repository's ``sweeps/`` ship inside the package as ``runner/sweeps/``, so an installed package, or a Ray job
whose working directory is elsewhere, finds them too (:func:`find_sweep_file`).

Everything is checked here, before Ray starts: unknown keys, misspelled fields and bad values fail
with the file's path and the dotted field name. runner/study/sweep_expand.py expands a checked sweep into its
trials (``expand``), its Tune search space (``param_space``) and back (``merge_trial``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.config import ConfigError, TrialConfig, config_columns, flat_items, unflatten
from runner.settings import did_you_mean, refuse_unknown
from runner.study.search import VALIDATION_METRICS, Search, parse_search
from runner.study.targets import Target, TargetError, parse_targets

TOP_LEVEL_KEYS = ("name", "description", "base", "grid", "variants", "search", "targets")
RUNNER_OWNED = ("logging.results_dir", "sweep")  # set from --results and the sweep name, never by a file
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SHIPPED_FOLDER = "sweeps"  # the repository's folder of studies; installed as the package runner.sweeps


class _Loader(yaml.SafeLoader):
    """YAML as researchers write it: ``1e-3`` is a float (PyYAML's YAML 1.1 rules read it as a string)."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def read_yaml(text: str) -> Any:
    """A sweep file's or an override's YAML, as the runner reads it (``1e-3`` a float)."""
    return yaml.load(text, Loader=_Loader)


class SweepError(ValueError):
    """A sweep file or command-line override is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class Sweep:
    """One study as written in its file (variants keep their unexpanded list values)."""

    name: str
    description: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    variants: list[dict[str, Any]]
    search: Search | None = None  # None: a grid sweep (the default)
    targets: tuple[Target, ...] = ()  # test accuracies whose rounds and GB to reach runner.plot reports
    path: Path | None = field(default=None, compare=False)

    @property
    def source(self) -> str:
        return str(self.path) if self.path is not None else f"sweep {self.name!r}"


def config_fields() -> tuple[str, ...]:
    """Every dotted leaf field a trial config can have (``data.dataset``, ``algorithm.mu``, ``seed``, ...)."""
    return tuple(config_columns())


def shipped_sweeps() -> Path:
    """Where the studies that come with the code are: ``sweeps/`` beside ``runner/`` in a checkout (or an
    editable install), ``runner/sweeps/`` in an installed wheel."""
    runner_dir = Path(__file__).resolve().parents[1]
    installed = runner_dir / SHIPPED_FOLDER
    return installed if installed.is_dir() else runner_dir.parent / SHIPPED_FOLDER


def shipped_names() -> list[str]:
    """The shipped studies by name (``fig4``, ``quickstart``, ...)."""
    return [path.stem for path in sorted(shipped_sweeps().glob("*.yaml"))]


def find_sweep_file(given: str | Path) -> Path:
    """The sweep file meant by ``given``: a file that exists as given, else the shipped study it names
    (``fig4``, ``fig4.yaml`` or ``sweeps/fig4.yaml``, from whatever directory the command runs in)."""
    path = Path(given).expanduser()
    if path.is_file():
        return path
    if not path.is_absolute() and path.parent in (Path("."), Path(SHIPPED_FOLDER)):
        shipped = shipped_sweeps() / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
        if shipped.is_file():
            return shipped
    names = ", ".join(shipped_names())
    raise SweepError(f"{given}: no such sweep file (a path, or one of the shipped studies: {names})")


def load_sweep(path: str | Path, *, check_trials: bool = True) -> Sweep:
    """Read and validate a sweep file; every trial it expands to is validated too (``check_trials``; a caller
    that applies overrides first validates the trials after them, as :func:`load_with_overrides` does)."""
    path = find_sweep_file(path)
    try:
        raw = read_yaml(path.read_text())
    except yaml.YAMLError as error:
        raise SweepError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, Mapping):
        raise SweepError(f"{path}: expected a mapping with keys {', '.join(TOP_LEVEL_KEYS)}")
    try:
        refuse_unknown(raw, TOP_LEVEL_KEYS, "")
    except ConfigError as error:
        raise SweepError(f"{path}: {error}") from None

    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise SweepError(f"{path}: name: expected a directory-safe string like 'fig4', got {name!r}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SweepError(f"{path}: description: expected a string, got {description!r}")

    sweep = Sweep(
        name=name,
        description=description.strip(),
        base=unflatten(_base_fields(raw.get("base") or {}, path)),
        grid=_grid(raw.get("grid") or {}, path),
        variants=_variants(raw.get("variants") or [], path),
        search=_search(raw.get("search"), path),
        targets=_targets(raw.get("targets"), path),
        path=path,
    )
    _check_no_overlap(sweep)
    _check_search_fits(sweep)
    if check_trials:
        from runner.study.sweep_expand import expand  # expansion reads the checked sweep: imported when used

        _check_targets_apply(sweep, expand(sweep))
    return sweep


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """``["train.rounds=2", "model.gamma=null"]`` -> ``{"train.rounds": 2, "model.gamma": None}``."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise SweepError(f"override {pair!r}: expected key=value, e.g. train.rounds=2")
        try:
            overrides[key.strip()] = read_yaml(text)
        except yaml.YAMLError as error:
            raise SweepError(f"override {pair!r}: value is not valid YAML: {error}") from None
    return overrides


def check_override_keys(keys: Iterable[str], source: str) -> None:
    """Each command-line override names a config field the runner does not own (:class:`SweepError` if not)."""
    for key in keys:
        _check_field(key, source)


def check_expanded(sweep: Sweep, base: Mapping[str, Any], params: Mapping[str, Any], config: TrialConfig,
                   where: Mapping[str, Any]) -> None:
    """What an expanded trial must pass beyond its own config: a search's ranges at both ends, its metric's data."""
    _check_search_ends(sweep, base, params, where)
    _check_validation(sweep, config, where)


def describe(values: Mapping[str, Any]) -> str:
    """A trial's grid and variant values as an error message names them (``model.gamma=0.1, seed=0``)."""
    return _describe(values)


def _check_search_ends(sweep: Sweep, base: Mapping[str, Any], params: Mapping[str, Any],
                       where: Mapping[str, Any]) -> None:
    """Every searched setting at the low, then the high end of its range must make a valid trial."""
    from runner.study.sweep_expand import merge_trial

    if sweep.search is None:
        return
    for end in ("low", "high"):
        drawn = {key: getattr(domain, end) for key, domain in sweep.search.space.items()}
        try:
            TrialConfig.from_dict(merge_trial(base, {**params, **drawn}))
        except ConfigError as error:
            ranges = ", ".join(f"{key} ~ {domain.text()}" for key, domain in sweep.search.space.items())
            raise SweepError(f"{sweep.source}: search.space: {error} (at the {end} end of {ranges}, in the trial "
                             f"with {_describe(where)})") from None


def _check_validation(sweep: Sweep, config: TrialConfig, where: Mapping[str, Any]) -> None:
    """A search on a validation metric needs validation data in every trial."""
    if sweep.search is None or sweep.search.metric not in VALIDATION_METRICS or config.data.validation_fraction > 0:
        return
    raise SweepError(f"{sweep.source}: search.metric: {sweep.search.metric} needs validation data, and "
                     f"data.validation_fraction is 0 (in the trial with {_describe(where)}); hold out a fraction of "
                     "the clients' training samples, e.g. data.validation_fraction: 0.1")


def _base_fields(base: Any, path: Path) -> dict[str, Any]:
    if not isinstance(base, Mapping):
        raise SweepError(f"{path}: base: expected a mapping of config sections, got {base!r}")
    flat: dict[str, Any] = {}
    for key, value in flat_items(base):
        _check_field(key, f"{path}: base")
        if key in flat:
            raise SweepError(f"{path}: base: {key} is given twice")
        flat[key] = value
    return flat


def _grid(grid: Any, path: Path) -> dict[str, list[Any]]:
    if not isinstance(grid, Mapping):
        raise SweepError(f"{path}: grid: expected a mapping of dotted keys to lists, got {grid!r}")
    for key, values in grid.items():
        if not isinstance(values, list):
            raise SweepError(f"{path}: grid: {key}: expected a list of values, got {values!r} "
                             f"(a single value belongs in base)")
        if not values:
            raise SweepError(f"{path}: grid: {key}: the list is empty, so the sweep would have no trials")
        if is_axis_of_sets(key, values):
            _check_axis(key, values, f"{path}: grid: {key}")
        else:
            _check_field(key, f"{path}: grid")
            _check_distinct(values, f"{path}: grid: {key}")
    return {str(key): list(values) for key, values in grid.items()}


def is_axis_of_sets(key: Any, values: Any) -> bool:
    """Whether a grid axis (or a variant's key) is a label with override sets
    (``method: [{algorithm.name: fedprox, ...}]``)."""
    return (key not in config_fields() and _is_label(key) and isinstance(values, list)
            and all(isinstance(v, Mapping) for v in values))


def _is_label(key: Any) -> bool:
    sections = {k.split(".")[0] for k in config_fields() if "." in k}
    return isinstance(key, str) and "." not in key and key not in sections and bool(_NAME_PATTERN.match(key))


def _check_axis(key: str, sets: list[Any], where: str) -> None:
    if not sets:
        raise SweepError(f"{where}: the list is empty, so the sweep would have no trials")
    seen: list[Any] = []
    for index, overrides in enumerate(sets):
        if not overrides:
            raise SweepError(f"{where}[{index}]: expected a non-empty mapping of dotted keys to values")
        for field_key, value in overrides.items():
            _check_field(field_key, f"{where}[{index}]")
            if isinstance(value, (Mapping, list)):
                raise SweepError(f"{where}[{index}]: {field_key}: values must be scalars, got {value!r}")
        if overrides in seen:
            raise SweepError(f"{where}: {dict(overrides)!r} is listed twice")
        seen.append(overrides)


def field_keys(key: str, value: Any) -> list[str]:
    """The config fields one entry of a grid or a variant sets: its override sets' keys, or the key itself."""
    return sorted(set().union(*value)) if is_axis_of_sets(key, value) else [key]


def grid_axis_keys(sweep: Sweep) -> dict[str, str]:
    """Each dotted key the grid sets -> the Tune config path holding it (``seed``, ``method/algorithm.mu``)."""
    paths: dict[str, str] = {}
    for key, values in sweep.grid.items():
        if is_axis_of_sets(key, values):
            for overrides in values:
                for field_key in overrides:
                    paths[field_key] = f"{key}/{field_key}"
        else:
            paths[key] = key
    return paths


def _variants(variants: Any, path: Path) -> list[dict[str, Any]]:
    if not isinstance(variants, list):
        raise SweepError(f"{path}: variants: expected a list of mappings, got {variants!r}")
    checked = []
    for index, variant in enumerate(variants):
        where = f"{path}: variants[{index}]"
        if not isinstance(variant, Mapping) or not variant:
            raise SweepError(f"{where}: expected a non-empty mapping of dotted keys to values, got {variant!r}")
        for key, value in variant.items():
            if is_axis_of_sets(key, value):
                _check_axis(key, value, f"{where}: {key}")
                continue
            _check_field(key, where)
            if isinstance(value, list):
                if not value:
                    raise SweepError(f"{where}: {key}: the list is empty, so this variant has no trials")
                _check_distinct(value, f"{where}: {key}")
        checked.append(dict(variant))
    return checked


def _search(raw: Any, path: Path) -> Search | None:
    if raw is None:
        return None
    try:
        search = parse_search(raw, config_columns())
    except ConfigError as error:
        raise SweepError(f"{path}: {error}") from None
    for key in search.space:
        if key in RUNNER_OWNED:
            raise SweepError(f"{path}: search.space.{key}: set by the runner (from --results and the sweep name)")
    return search


def _targets(raw: Any, path: Path) -> tuple[Target, ...]:
    if raw is None:
        return ()
    try:
        return tuple(parse_targets(raw, config_columns()))
    except TargetError as error:
        raise SweepError(f"{path}: {error}") from None


def _check_targets_apply(sweep: Sweep, trials: list[TrialConfig]) -> None:
    """Every target is some trial's (a misspelled value would leave it reported nowhere)."""
    flats = [trial.flat() for trial in trials]
    for index, target in enumerate(sweep.targets):
        if not any(target.applies(flat) for flat in flats):
            raise SweepError(f"{sweep.source}: targets[{index}]: applies to none of the sweep's trials "
                             f"({_describe(target.where)})")


def _check_search_fits(sweep: Sweep) -> None:
    """A searched setting is drawn, so it is listed nowhere else; Optuna proposes whole trials, so no grid."""
    if sweep.search is None:
        return
    grid_keys = grid_axis_keys(sweep)
    for key in sweep.search.space:
        if key in grid_keys:
            raise SweepError(f"{sweep.source}: search.space.{key}: also a grid key; a searched setting is drawn, "
                             "not listed (remove it from one place)")
    for index, variant in enumerate(sweep.variants):
        for key, value in variant.items():
            for field_key in field_keys(key, value):
                if field_key in sweep.search.space:
                    raise SweepError(f"{sweep.source}: search.space.{field_key}: also set by variants[{index}]; a "
                                     "searched setting is drawn, not listed (remove it from one place)")
    from runner.study.sweep_expand import expand_variants, grid_points

    points = len(grid_points(sweep)) * max(1, len(expand_variants(sweep)))
    if sweep.search.algorithm == "optuna" and points > 1:
        raise SweepError(f"{sweep.source}: search.algorithm: optuna proposes every trial itself and cannot cross a "
                         f"grid ({points} grid points here); use algorithm: random, or one sweep file per grid point")


def _check_no_overlap(sweep: Sweep) -> None:
    owners: dict[str, str] = {}
    for key, values in sweep.grid.items():
        for field_key in field_keys(key, values):
            if field_key in owners:
                raise SweepError(f"{sweep.source}: grid: {field_key} is set by both {owners[field_key]} and {key}")
            owners[field_key] = key
    for index, variant in enumerate(sweep.variants):
        where = f"{sweep.source}: variants[{index}]"
        variant_owners: dict[str, str] = {}
        for key, value in variant.items():
            for field_key in field_keys(key, value):
                if field_key in owners:
                    raise SweepError(f"{where}: {field_key} is also a grid key; the variant would override every "
                                     f"grid value (put it in one place)")
                if field_key in variant_owners:
                    raise SweepError(f"{where}: {field_key} is set by both {variant_owners[field_key]} and {key}")
                variant_owners[field_key] = key


def _check_field(key: Any, where: str) -> None:
    known = config_fields()
    if not isinstance(key, str) or key not in known:
        sections = {k.split(".")[0] for k in known if "." in k}
        hint = (f" (a section: name one of its fields, e.g. {next(k for k in known if k.startswith(f'{key}.'))})"
                if key in sections else did_you_mean(key, known))
        raise SweepError(f"{where}: {key!r} is not a config field{hint}")
    if key in RUNNER_OWNED:
        raise SweepError(f"{where}: {key} is set by the runner (from --results and the sweep name); remove it")


def _check_distinct(values: list[Any], where: str) -> None:
    seen = []
    for value in values:
        if isinstance(value, (Mapping, list)):
            raise SweepError(f"{where}: values must be scalars, got {value!r}")
        if value in seen:
            raise SweepError(f"{where}: {value!r} is listed twice")
        seen.append(value)


def _describe(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items()) or "the base settings"
