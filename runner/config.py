"""Typed trial configuration, validated once at the edge.

A trial is one federated experiment. Its configuration arrives as a nested dict (a sweep file, a Tune
trial's ``config``, CLI overrides) and is turned into frozen dataclasses by :meth:`TrialConfig.from_dict`,
which is the only place that checks values. A bad value raises :class:`ConfigError` naming the dotted
field, before any Ray actor starts; code deeper in the runner trusts the config it is handed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from models import ARCHITECTURES, PARAMETERIZATIONS
from partitions import DATASETS, SCHEMES
from runner.algorithms import REGISTRY, Algorithm, NoSettings, Upload, broken_rules

EVALUATIONS = ("auto", "global", "personal")
WANDB_MODES = ("auto", "online", "offline", "disabled")
PRECISIONS = ("fp32", "bf16")
# Fields added after trials were first named and run, with the value those trials had in effect: at that value a
# field stays out of a trial's name (earlier trials keep their names, results and checkpoints), and results and
# sweep records written before a field existed read as if they had it.
ADDED_FIELDS: dict[str, Any] = {"train.precision": "fp32", "data.client_fraction": 1.0,
                                "data.validation_fraction": 0.0, "model.param_ratio": None,
                                "logging.checkpoint_runs": 8}


class ConfigError(ValueError):
    """A configuration value is wrong; the message starts with the dotted field name."""


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where it lives, and how it is split across clients (docs/method.md, "Settings")."""

    dataset: str = "synthetic"
    root: str = "~/fedpara-data"
    download: bool = False
    partition: str = "iid"
    alpha: float = 0.5
    classes_per_client: int = 2
    num_clients: int = 100
    clients_per_round: int = 16
    client_fraction: float = 1.0  # each client trains on this fraction of its samples (Figure 5's scarce data)
    # held out of each client's training samples (seeded) as validation data, scored every evaluated round as
    # val_accuracy: what a search tunes on (never the test set); 0: no validation data, every sample trains
    validation_fraction: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and parameterization; one of ``gamma``, ``ratio`` (per layer) or ``param_ratio`` (a share of
    the whole original model, solved into γ or the low-rank ranks: models/budget.py) sizes a factorized model."""

    arch: str = "cnn"
    parameterization: str = "fedpara"
    gamma: float | None = 0.1
    ratio: float | None = None
    param_ratio: float | None = None
    tanh: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """Client-side SGD and the round schedule (docs/method.md, "Settings")."""

    rounds: int = 200
    local_epochs: int = 1
    batch_size: int = 64
    lr: float = 0.1
    lr_decay: float = 0.992
    momentum: float = 0.0
    weight_decay: float = 0.0
    augment: bool = True
    eval_every: int = 1
    evaluation: str = "auto"
    precision: str = "fp32"  # bf16: forward passes under bfloat16 autocast; weights and updates stay fp32


@dataclass(frozen=True)
class AlgorithmConfig:
    """The FL algorithm and the settings it reads: the fields of its own ``Settings`` (runner/algorithms/).

    Written flat in a config (``algorithm: {name: fedprox, mu: 0.01}``); a setting the named algorithm
    does not read is refused, so it can never change a trial's identity.
    """

    name: str = "fedavg"
    settings: Any = field(default_factory=NoSettings)

    def build(self) -> Algorithm:
        return REGISTRY[self.name](self.settings)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self.settings)}


@dataclass(frozen=True)
class ResourcesConfig:
    """How a trial occupies the cluster: one driver plus ``num_workers`` client-worker actors."""

    num_workers: int = 2
    cpus_per_worker: float = 0.5
    gpus_per_worker: float = 0.0
    driver_cpus: float = 0.25


@dataclass(frozen=True)
class LoggingConfig:
    """Where results, checkpoints and W&B runs go."""

    results_dir: str = "results"
    checkpoint_every: int = 10
    checkpoint_runs: int = 8  # most runs of client-state pieces a resume reads (engine/client_state_pieces.py)
    wandb: str = "auto"
    wandb_project: str = "fedpara"


@dataclass(frozen=True)
class TrialConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    upload: Upload = field(default_factory=Upload)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    seed: int = 0
    name: str = ""
    sweep: str = ""

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrialConfig:
        """Build and validate a config; unknown or ill-typed fields raise :class:`ConfigError`."""
        config = _build(cls, raw, prefix="")
        _validate(config)
        return config

    def to_dict(self) -> dict[str, Any]:
        tree = dataclasses.asdict(self)
        tree["algorithm"] = self.algorithm.to_dict()
        return tree

    def flat(self) -> dict[str, Any]:
        """Dotted keys (``model.gamma``), the column names of the Parquet results."""
        return flatten(self.to_dict())

    @property
    def trial_name(self) -> str:
        """A stable, readable name; the hash keeps trials that differ elsewhere apart."""
        if self.name:
            return self.name
        d, m, a = self.data, self.model, self.algorithm
        split = f"dir{d.alpha:g}" if d.partition == "dirichlet" else d.partition
        if d.client_fraction != ADDED_FIELDS["data.client_fraction"]:
            split += f"-frac{d.client_fraction:g}"
        if d.validation_fraction != ADDED_FIELDS["data.validation_fraction"]:
            split += f"-val{d.validation_fraction:g}"
        knob = "" if m.parameterization == "original" else (
            f"-g{m.gamma:g}" if m.gamma is not None else f"-rho{m.ratio:g}" if m.ratio is not None
            else f"-size{m.param_ratio:g}")
        levels = self.upload.quantize_levels
        upload = "" if levels is None else f"-q{levels}"
        precision = "" if self.train.precision == ADDED_FIELDS["train.precision"] else f"-{self.train.precision}"
        identity = {k: v for k, v in self.flat().items() if not k.startswith(("logging.", "resources."))
                    and not (k in ADDED_FIELDS and v == ADDED_FIELDS[k])}
        digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
        return (f"{d.dataset}-{split}-{m.arch}-{m.parameterization}{knob}-{a.name}{upload}{precision}"
                f"-s{self.seed}-{digest}")

    @property
    def personalized(self) -> bool:
        """Whether accuracy is measured per client on its own held-out data."""
        if self.train.evaluation != "auto":
            return self.train.evaluation == "personal"
        return REGISTRY[self.algorithm.name].personalized


def flat_items(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every leaf of a nested mapping, in order (a key may come twice)."""
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from flat_items(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def flatten(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``{"model": {"gamma": 0.3}}`` into ``{"model.gamma": 0.3}``; the inverse of :func:`unflatten`."""
    return dict(flat_items(tree))


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``{"model.gamma": 0.3}`` into ``{"model": {"gamma": 0.3}}`` (CLI overrides, Tune configs)."""
    tree: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{dotted}: '{part}' is a value, not a section")
        node[leaf] = value
    return tree


def _build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(raw).__name__}")
    if cls is AlgorithmConfig:
        return _build_algorithm(raw, prefix)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown field (valid: {', '.join(sorted(known))})")
    values = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        hint, value, dotted = hints[f.name], raw[f.name], f"{prefix}{f.name}"
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            values[f.name] = _build(hint, value, f"{dotted}.")
        else:
            values[f.name] = _coerce(hint, value, dotted)
    return cls(**values)


def _build_algorithm(raw: Mapping[str, Any], prefix: str) -> AlgorithmConfig:
    """``{name: fedprox, mu: 0.01}`` -> AlgorithmConfig(name, FedProx.Settings(mu=0.01)); a key the named
    algorithm does not read is refused, saying which algorithms do read it."""
    name = _coerce(str, raw.get("name", AlgorithmConfig.name), f"{prefix}name")
    if name not in REGISTRY:
        hint = (" (FedPAQ is FedAvg with a quantized upload: algorithm.name: fedavg and upload.quantize_levels: 16)"
                if name == "fedpaq" else "")
        raise ConfigError(f"{prefix}name: unknown value {name!r} (choose from {', '.join(REGISTRY)}){hint}")
    settings_cls = REGISTRY[name].Settings
    for key in raw:
        if key != "name" and key not in {f.name for f in fields(settings_cls)}:
            readers = [n for n, a in REGISTRY.items() if key in {f.name for f in fields(a.Settings)}]
            reason = f"read by {', '.join(readers)}" if readers else "no algorithm has this setting"
            raise ConfigError(f"{prefix}{key}: {name} does not read it ({reason})")
    settings = _build(settings_cls, {k: v for k, v in raw.items() if k != "name"}, prefix)
    for key, rule, value in broken_rules(settings):
        raise ConfigError(f"{prefix}{key}: {rule}, got {value!r}")
    return AlgorithmConfig(name, settings)


def config_columns() -> dict[str, Any]:
    """Every dotted field a trial config can have, with its Python type: the config's own sections, plus
    the settings of every algorithm (a column is empty for trials whose algorithm does not read it)."""
    columns: dict[str, Any] = {}

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if cls is AlgorithmConfig and f.name == "settings":
                for algorithm in REGISTRY.values():
                    walk(algorithm.Settings, prefix)
            elif dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{prefix}{f.name}.")
            else:
                columns[f"{prefix}{f.name}"] = hints[f.name]

    walk(TrialConfig, "")
    return columns


def hint_options(hint: Any) -> tuple[Any, ...]:
    """The types a field's annotation allows: the members of ``A | B``, or the one type."""
    return typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)


def _coerce(hint: Any, value: Any, dotted: str) -> Any:
    """Accept a value of the declared type (ints for floats too); anything else is a ConfigError."""
    options = hint_options(hint)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
    names = " or ".join("null" if o is type(None) else o.__name__ for o in options)
    raise ConfigError(f"{dotted}: expected {names}, got {value!r}")


def _require(condition: bool, dotted: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{dotted}: {message}")


def _one_of(value: str, choices: tuple[str, ...], dotted: str) -> None:
    _require(value in choices, dotted, f"unknown value {value!r} (choose from {', '.join(choices)})")


def _validate(c: TrialConfig) -> None:
    d, m, t, a, r, lg = c.data, c.model, c.train, c.algorithm, c.resources, c.logging

    _one_of(d.dataset, tuple(DATASETS), "data.dataset")
    info = DATASETS[d.dataset]
    _one_of(d.partition, SCHEMES, "data.partition")
    _require(d.partition != "natural" or info.natural, "data.partition",
             f"'natural' needs a dataset with natural users, and {d.dataset} has none")
    _require(d.alpha > 0, "data.alpha", f"must be > 0, got {d.alpha}")
    _require(d.classes_per_client >= 1, "data.classes_per_client", f"must be >= 1, got {d.classes_per_client}")
    _require(d.num_clients >= 1, "data.num_clients", f"must be >= 1, got {d.num_clients}")
    _require(1 <= d.clients_per_round <= d.num_clients, "data.clients_per_round",
             f"must be between 1 and data.num_clients={d.num_clients}, got {d.clients_per_round}")
    _require(0 < d.client_fraction <= 1, "data.client_fraction",
             f"must be in (0, 1] (the fraction of each client's training samples it keeps), got {d.client_fraction}")
    _require(0 <= d.validation_fraction < 1, "data.validation_fraction",
             "must be in [0, 1) (the fraction of each client's training samples held out), "
             f"got {d.validation_fraction}")

    _one_of(m.arch, ARCHITECTURES, "model.arch")
    _one_of(m.parameterization, PARAMETERIZATIONS, "model.parameterization")
    needs_text = m.arch == "lstm"
    _require(needs_text == (info.kind == "text"), "model.arch",
             f"{m.arch} cannot read the {info.kind} dataset {d.dataset}")
    if m.gamma is not None:
        _require(0.0 <= m.gamma <= 1.0, "model.gamma", f"must be in [0, 1], got {m.gamma}")
    if m.ratio is not None:
        _require(0.0 < m.ratio <= 1.0, "model.ratio", f"must be in (0, 1], got {m.ratio}")
    if m.param_ratio is not None:
        _require(0.0 < m.param_ratio <= 1.0, "model.param_ratio",
                 f"must be in (0, 1] (a share of the original model's parameters), got {m.param_ratio}")
        _require(m.parameterization != "original", "model.param_ratio",
                 "an original model is the whole model; set model.param_ratio: null")
        others = [f"model.{k}={v}" for k, v in (("gamma", m.gamma), ("ratio", m.ratio)) if v is not None]
        _require(not others, "model.param_ratio",
                 f"mutually exclusive with model.gamma and model.ratio, got {', '.join(others)} too "
                 "(set it to null)")
    elif m.parameterization != "original":
        _require((m.gamma is None) != (m.ratio is None), "model.gamma",
                 "set exactly one of model.gamma, model.ratio and model.param_ratio for a factorized model")

    _require(t.rounds >= 1, "train.rounds", f"must be >= 1, got {t.rounds}")
    _require(t.local_epochs >= 1, "train.local_epochs", f"must be >= 1, got {t.local_epochs}")
    _require(t.batch_size >= 1, "train.batch_size", f"must be >= 1, got {t.batch_size}")
    _require(t.lr > 0, "train.lr", f"must be > 0, got {t.lr}")
    _require(0 < t.lr_decay <= 1, "train.lr_decay", f"must be in (0, 1], got {t.lr_decay}")
    _require(0 <= t.momentum < 1, "train.momentum", f"must be in [0, 1), got {t.momentum}")
    _require(t.weight_decay >= 0, "train.weight_decay", f"must be >= 0, got {t.weight_decay}")
    _require(t.eval_every >= 1, "train.eval_every", f"must be >= 1, got {t.eval_every}")
    _one_of(t.evaluation, EVALUATIONS, "train.evaluation")
    _one_of(t.precision, PRECISIONS, "train.precision")

    needs = REGISTRY[a.name].requires_parameterization
    _require(needs in (None, m.parameterization), "algorithm.name",
             f"{a.name} needs model.parameterization: {needs}, got {m.parameterization}")
    for key, rule, value in broken_rules(c.upload):
        raise ConfigError(f"upload.{key}: {rule}, got {value!r}")

    _require(r.num_workers >= 1, "resources.num_workers", f"must be >= 1, got {r.num_workers}")
    _require(r.cpus_per_worker > 0, "resources.cpus_per_worker", f"must be > 0, got {r.cpus_per_worker}")
    _require(0 <= r.gpus_per_worker <= 1, "resources.gpus_per_worker",
             f"must be in [0, 1] (a fraction of one GPU per worker), got {r.gpus_per_worker}")
    _require(r.driver_cpus > 0, "resources.driver_cpus", f"must be > 0, got {r.driver_cpus}")

    _require(bool(lg.results_dir), "logging.results_dir", "must not be empty")
    _require(lg.checkpoint_every >= 0, "logging.checkpoint_every", f"must be >= 0, got {lg.checkpoint_every}")
    _require(lg.checkpoint_runs >= 1, "logging.checkpoint_runs", f"must be >= 1, got {lg.checkpoint_runs}")
    _one_of(lg.wandb, WANDB_MODES, "logging.wandb")
