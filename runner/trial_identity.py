"""What makes a trial the trial it is, its folder name, and the labels figures and tables give it.

Two trials are the same experiment when they agree on every config field but how they run (``logging.*``,
``resources.*``: :data:`RUN_SETTINGS`); a field added after results existed counts only away from its default,
so old trials keep their names (``runner/config.py`` ``ADDED_FIELDS``). The name is readable and ends with a
digest of those fields; it names the trial's rows, checkpoints and W&B run, and ``--resume`` refuses a change
to them. How a factorized model's size is written lives here once: ``g0.1``/``rho0.5``/``size0.3`` in names,
``γ=0.1``/``ρ=0.5`` in labels.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.config import TrialConfig

RUN_SETTINGS = ("logging.", "resources.")  # how a trial runs, not what it is
NOT_AN_EXPERIMENT = ("name", "sweep")      # where a trial is filed, not what it measures (figures group without)


def is_run_setting(key: str) -> bool:
    """Whether a dotted field says how a trial runs (may change on ``--resume``) rather than what it is."""
    return key.startswith(RUN_SETTINGS)


def identity(flat: Mapping[str, Any], added: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that make a trial what it is: all but the run settings, and an added field only away from
    its default (``added``: field -> default)."""
    return {k: v for k, v in flat.items() if not is_run_setting(k) and not (k in added and v == added[k])}


def experiment_columns(columns: Iterable[str]) -> list[str]:
    """Of the given config columns, those that make trials different experiments (figures and tables group
    by them): neither run settings nor where a trial is filed."""
    return [c for c in columns if not is_run_setting(c) and c not in NOT_AN_EXPERIMENT]


def size_text(gamma: float | None, ratio: float | None, param_ratio: float | None = None, *,
              label: bool = False) -> str:
    """A factorized model's size knob: ``g0.1``/``rho0.5``/``size0.3`` in names, ``γ=0.1``/``ρ=0.5`` in labels
    (a label leaves a whole-model ``param_ratio`` to its own column); empty when none is set."""
    if _given(gamma):
        return f"γ={gamma:g}" if label else f"g{gamma:g}"
    if _given(ratio):
        return f"ρ={ratio:g}" if label else f"rho{ratio:g}"
    if _given(param_ratio) and not label:
        return f"size{param_ratio:g}"
    return ""


def trial_name(cfg: TrialConfig) -> str:
    """A stable, readable name; the digest keeps trials that differ elsewhere apart."""
    from runner.config import ADDED_FIELDS

    if cfg.name:
        return cfg.name
    d, m, a = cfg.data, cfg.model, cfg.algorithm
    split = f"dir{d.alpha:g}" if d.partition == "dirichlet" else d.partition
    if d.client_fraction != ADDED_FIELDS["data.client_fraction"]:
        split += f"-frac{d.client_fraction:g}"
    if d.validation_fraction != ADDED_FIELDS["data.validation_fraction"]:
        split += f"-val{d.validation_fraction:g}"
    if d.client_sampling != ADDED_FIELDS["data.client_sampling"]:
        split += f"-{d.client_sampling}"
    knob = "" if m.parameterization == "original" else f"-{size_text(m.gamma, m.ratio, m.param_ratio)}"
    levels = cfg.upload.quantize_levels
    upload = "" if levels is None else f"-q{levels}"
    precision = "" if cfg.train.precision == ADDED_FIELDS["train.precision"] else f"-{cfg.train.precision}"
    digest = hashlib.sha1(json.dumps(identity(cfg.flat(), ADDED_FIELDS), sort_keys=True).encode()).hexdigest()[:8]
    return (f"{d.dataset}-{split}-{m.arch}-{m.parameterization}{knob}-{a.name}{upload}{precision}"
            f"-s{cfg.seed}-{digest}")


def point_name(name: str) -> str:
    """A search's grid point named without the digest (which depends on the values Tune draws)."""
    return name.rsplit("-", 1)[0]


def split_label(partition: str, alpha: float, classes: float, fraction: float | None) -> str:
    """``iid``, ``dirichlet(α=0.5)``, ``pathological(2 classes)``, with ``, 50% of local data`` when a client
    keeps only a fraction."""
    label = str(partition)
    if partition == "dirichlet":
        label = f"dirichlet(α={alpha:g})"
    elif partition == "pathological":
        label = f"pathological({int(classes)} classes)"
    if _given(fraction) and fraction != 1:
        label += f", {100 * fraction:g}% of local data"  # type: ignore[operator]
    return label


def model_label(arch: str, parameterization: str, gamma: float | None, ratio: float | None) -> str:
    """``cnn original``, ``cnn fedpara γ=0.1``."""
    knob = "" if parameterization == "original" else size_text(gamma, ratio, label=True)
    return f"{arch} {parameterization}" + (f" {knob}" if knob else "")


def method_label(algorithm: str, quantize_levels: float | None) -> str:
    """The algorithm, and how its upload is quantized: ``fedavg+q16`` is FedPAQ."""
    if not _given(quantize_levels):
        return str(algorithm)
    return f"{algorithm}+q{int(quantize_levels)}"  # type: ignore[arg-type]


def _given(value: Any) -> bool:
    """Set, in a config (None) or a table column (NaN)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))
