"""Typed trial configuration, validated once at the edge.

A trial is one federated experiment. Its configuration arrives as a nested dict (a sweep file, a Tune
trial's ``config``, CLI overrides) and is turned into frozen dataclasses by :meth:`TrialConfig.from_dict`,
which is the only place that checks values. A bad value raises :class:`ConfigError` naming the dotted
field, before any Ray actor starts; code deeper in the runner trusts the config it is handed. Each field
declares its own rule (:func:`runner.settings.setting`); the rules that relate two fields are in
:func:`_check_across_fields`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from models import ARCHITECTURES, PARAMETERIZATIONS
from partitions import DATASETS, SCHEMES
from runner.algorithms import REGISTRY, Algorithm, NoSettings, Upload
from runner.engine.seeding import SAMPLING
from runner.settings import (
    ConfigError,
    build,
    check_value,
    field_schema,
    joined,
    json_schema,
    rule_of,
    setting,
    type_hints,
)
from runner.settings import hint_options as hint_options  # re-exported: results.py reads column types with it

EVALUATIONS = ("auto", "global", "personal")
WANDB_MODES = ("auto", "online", "offline", "disabled")
PRECISIONS = ("fp32", "bf16")
# Fields added after trials were first named and run, with the value those trials had in effect: at that value a
# field stays out of a trial's name (earlier trials keep their names, results and checkpoints), and results and
# sweep records written before a field existed read as if they had it.
ADDED_FIELDS: dict[str, Any] = {"train.precision": "fp32", "data.client_fraction": 1.0,
                                "data.validation_fraction": 0.0, "model.param_ratio": None,
                                "logging.checkpoint_runs": 8, "data.client_sampling": "uniform"}


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where it lives, and how it is split across clients (docs/method.md, "Settings")."""

    dataset: str = setting("synthetic", choices=lambda: tuple(DATASETS))
    root: str = "~/fedpara-data"
    download: bool = False
    partition: str = setting("iid", choices=lambda: tuple(SCHEMES))
    alpha: float = setting(0.5, gt=0)
    classes_per_client: int = setting(2, ge=1)
    num_clients: int = setting(100, ge=1)
    clients_per_round: int = setting(16, ge=1)  # and at most num_clients
    # who takes part in a round: a fresh uniform draw every round (the paper's), or "cyclic": slices of one seeded
    # permutation, so every client is trained once per num_clients / clients_per_round rounds
    client_sampling: str = setting("uniform", choices=SAMPLING)
    # each client trains on this fraction of its samples (Figure 5's scarce data)
    client_fraction: float = setting(1.0, gt=0, le=1, why="the fraction of each client's training samples it keeps")
    # held out of each client's training samples (seeded) as validation data, scored every evaluated round as
    # val_accuracy: what a search tunes on (never the test set); 0: no validation data, every sample trains
    validation_fraction: float = setting(0.0, ge=0, lt=1,
                                         why="the fraction of each client's training samples held out")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and parameterization; one of ``gamma``, ``ratio`` (per layer) or ``param_ratio`` (a share of
    the whole original model, solved into γ or the low-rank ranks: models/budget.py) sizes a factorized model."""

    arch: str = setting("cnn", choices=lambda: tuple(ARCHITECTURES))
    parameterization: str = setting("fedpara", choices=lambda: tuple(PARAMETERIZATIONS))
    gamma: float | None = setting(0.1, ge=0, le=1)
    ratio: float | None = setting(None, gt=0, le=1)
    param_ratio: float | None = setting(None, gt=0, le=1, why="a share of the original model's parameters")
    tanh: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """Client-side SGD and the round schedule (docs/method.md, "Settings")."""

    rounds: int = setting(200, ge=1)
    local_epochs: int = setting(1, ge=1)
    batch_size: int = setting(64, ge=1)
    lr: float = setting(0.1, gt=0)
    lr_decay: float = setting(0.992, gt=0, le=1)
    momentum: float = setting(0.0, ge=0, lt=1)
    weight_decay: float = setting(0.0, ge=0)
    augment: bool = True
    eval_every: int = setting(1, ge=1)
    evaluation: str = setting("auto", choices=EVALUATIONS)
    # bf16: forward passes under bfloat16 autocast; weights and updates stay fp32
    precision: str = setting("fp32", choices=PRECISIONS)


@dataclass(frozen=True)
class AlgorithmConfig:
    """The FL algorithm and the settings it reads: the fields of its own ``Settings`` (runner/algorithms/).

    Written flat in a config (``algorithm: {name: fedprox, mu: 0.01}``); a setting the named algorithm
    does not read is refused, so it can never change a trial's identity.
    """

    name: str = setting("fedavg", choices=lambda: tuple(REGISTRY))
    settings: Any = field(default_factory=NoSettings)

    def build(self) -> Algorithm:
        return REGISTRY[self.name](self.settings)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self.settings)}

    @classmethod
    def from_raw(cls, raw: Any, path: str) -> AlgorithmConfig:
        """``{name: fedprox, mu: 0.01}`` -> AlgorithmConfig(name, FedProx.Settings(mu=0.01)); a key the named
        algorithm does not read is refused, saying which algorithms do read it."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {raw!r}")
        where, declared = joined(path, "name"), fields(cls)[0]
        name = check_value(str, raw.get("name", declared.default), where)
        broken = rule_of(declared).broken(name, name)
        if broken:
            hint = (" (FedPAQ is FedAvg with a quantized upload: algorithm.name: fedavg and "
                    "upload.quantize_levels: 16)" if name == "fedpaq" else "")
            raise ConfigError(f"{where}: {broken}{hint}")
        settings_cls = REGISTRY[name].Settings
        for key in raw:
            if key != "name" and key not in {f.name for f in fields(settings_cls)}:
                readers = [n for n, a in REGISTRY.items() if key in {f.name for f in fields(a.Settings)}]
                reason = f"read by {', '.join(readers)}" if readers else "no algorithm has this setting"
                raise ConfigError(f"{joined(path, key)}: {name} does not read it ({reason})")
        return cls(name, build(settings_cls, {k: v for k, v in raw.items() if k != "name"}, path))

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The name, and every algorithm's settings (which algorithm reads which key the runner checks)."""
        declared = fields(cls)[0]
        properties = {"name": field_schema(str, rule_of(declared), declared)}
        for algorithm in REGISTRY.values():
            properties.update(json_schema(algorithm.Settings)["properties"])
        return {"type": "object", "properties": properties, "additionalProperties": False,
                "description": " ".join((cls.__doc__ or "").split())}


@dataclass(frozen=True)
class ResourcesConfig:
    """How a trial occupies the cluster: one driver plus ``num_workers`` client-worker actors."""

    num_workers: int = setting(2, ge=1)
    cpus_per_worker: float = setting(0.5, gt=0)
    gpus_per_worker: float = setting(0.0, ge=0, le=1, why="a fraction of one GPU per worker")
    driver_cpus: float = setting(0.25, gt=0)


@dataclass(frozen=True)
class LoggingConfig:
    """Where results, checkpoints and W&B runs go."""

    results_dir: str = setting("results", nonempty=True)
    checkpoint_every: int = setting(10, ge=0)
    # most runs of client-state pieces a resume reads (runner/engine/client_state_pieces.py)
    checkpoint_runs: int = setting(8, ge=1)
    wandb: str = setting("auto", choices=WANDB_MODES)
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
        config = build(cls, raw)
        _check_across_fields(config)
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
        """A stable, readable name (runner/trial_identity.py: what makes a trial the same, and its name)."""
        from runner.trial_identity import trial_name

        return trial_name(self)

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


def config_columns() -> dict[str, Any]:
    """Every dotted field a trial config can have, with its Python type: the config's own sections, plus
    the settings of every algorithm (a column is empty for trials whose algorithm does not read it)."""
    return dict(_columns(tuple(REGISTRY.values())))


@functools.cache
def _columns(algorithms: tuple[type[Algorithm], ...]) -> dict[str, Any]:
    columns: dict[str, Any] = {}

    def walk(cls: type, prefix: str) -> None:
        hints = type_hints(cls)
        for f in fields(cls):
            if cls is AlgorithmConfig and f.name == "settings":
                for algorithm in algorithms:
                    walk(algorithm.Settings, prefix)
            elif dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{prefix}{f.name}.")
            else:
                columns[f"{prefix}{f.name}"] = hints[f.name]

    walk(TrialConfig, "")
    return columns


def _require(condition: bool, dotted: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{dotted}: {message}")


def _check_across_fields(c: TrialConfig) -> None:
    """The rules that relate two fields (each field's own rule is declared on it and checked by ``build``)."""
    d, m, a = c.data, c.model, c.algorithm

    info = DATASETS[d.dataset]
    _require(d.partition != "natural" or info.natural, "data.partition",
             f"'natural' needs a dataset with natural users, and {d.dataset} has none")
    _require(d.clients_per_round <= d.num_clients, "data.clients_per_round",
             f"must be between 1 and data.num_clients={d.num_clients}, got {d.clients_per_round}")

    _require(ARCHITECTURES[m.arch].input_kind == info.kind, "model.arch",
             f"{m.arch} cannot read the {info.kind} dataset {d.dataset}")
    try:
        ARCHITECTURES[m.arch].check_input_shape(info.input_shape)
    except ValueError as error:
        raise ConfigError(f"model.arch: {error}, the shape of {d.dataset}") from None
    if m.param_ratio is not None:
        _require(m.parameterization != "original", "model.param_ratio",
                 "an original model is the whole model; set model.param_ratio: null")
        others = [f"model.{k}={v}" for k, v in (("gamma", m.gamma), ("ratio", m.ratio)) if v is not None]
        _require(not others, "model.param_ratio",
                 f"mutually exclusive with model.gamma and model.ratio, got {', '.join(others)} too "
                 "(set it to null)")
    elif m.parameterization != "original":
        _require((m.gamma is None) != (m.ratio is None), "model.gamma",
                 "set exactly one of model.gamma, model.ratio and model.param_ratio for a factorized model")

    needs = REGISTRY[a.name].requires_parameterization
    _require(needs in (None, m.parameterization), "algorithm.name",
             f"{a.name} needs model.parameterization: {needs}, got {m.parameterization}")
