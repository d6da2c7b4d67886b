"""A sweep's rows summarized the way its figures and tables read them: readable labels (split, model, method),
one row per trial group (trials equal but for ``seed``) with its final numbers, the rounds and GB to each target
accuracy, and the order groups and panels are shown in.

"Final accuracy" is a trial's mean test accuracy over its last 5 evaluated rounds
(runner/study/results.py ``final_accuracy``, also the W&B summary's ``final_test_accuracy``), then averaged
over seeds. A group with a diverged trial has no final accuracy (NaN, with ``diverged_at``).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from runner.algorithms import REGISTRY
from runner.config import config_columns
from runner.study.results import BYTES_PER_GB, final_accuracy
from runner.study.targets import Target, over_seeds, reached
from runner.trial_identity import experiment_columns, method_label, model_label, split_label

PANEL = ["data.dataset", "split"]
GRID_PANEL = ["model.arch", "data.dataset"]
SPLIT_COLUMNS = ["data.partition", "data.alpha", "data.classes_per_client", "data.client_fraction"]  # -> "split"
MODEL = ["model.arch", "model.parameterization", "model.gamma", "model.ratio", "model.tanh"]
METHOD = ["algorithm.name", "upload.quantize_levels"]  # shown together as one label: fedavg, fedavg+q16, ...
SPLIT_ORDER = ("iid", "dirichlet", "pathological", "natural")
PARAMETERIZATION_ORDER = {"original": 0, "lowrank": 1, "fedpara": 2, "pfedpara": 3}


def summarize(rounds: pd.DataFrame) -> pd.DataFrame | None:
    """One row per trial group (trials equal but for ``seed``) with its final numbers."""
    rounds = with_labels(rounds)
    diverged = rounds["diverged"].notna() if "diverged" in rounds else pd.Series(False, index=rounds.index)
    if rounds["test_accuracy"].isna().all() and not diverged.any():
        return None
    identity = identity_columns(rounds)
    per_trial = []
    for trial, rows in rounds.groupby("trial", sort=True):
        rows = rows.sort_values("round")
        last = rows.iloc[-1]
        stopped = int(last["round"]) if pd.notna(last.get("diverged")) else None
        per_trial.append({
            **{c: last[c] for c in [*identity, "split", "model", "method"]},
            "trial": trial,
            "final_accuracy": final_accuracy(rows["test_accuracy"]) if stopped is None else math.nan,
            "diverged_at": math.nan if stopped is None else stopped,
            "param_ratio": last["param_ratio"],
            "total_gb": last["cumulative_bytes"] / BYTES_PER_GB,
            "rounds": int(last["round"]),
        })
    trials = pd.DataFrame(per_trial)
    keys = [c for c in identity if c != "seed"] + ["split", "model", "method"]
    grouped = trials.groupby(keys, dropna=False, sort=False)
    summary = grouped.agg(final_accuracy=("final_accuracy", lambda a: a.mean(skipna=False)),  # a diverged seed: NaN
                          final_accuracy_std=("final_accuracy", "std"), diverged_at=("diverged_at", "min"),
                          param_ratio=("param_ratio", "mean"), total_gb=("total_gb", "mean"),
                          rounds=("rounds", "min"), seeds=("trial", "count")).reset_index()
    return summary


def target_summary(rounds: pd.DataFrame, targets: list[Target] | tuple[Target, ...]) -> pd.DataFrame | None:
    """One row per (trial group, target that applies to it): the rounds and GB to reach it, over seeds, beside
    the group's final accuracy, and how many times fewer GB than the original model of its panel and algorithm
    needed (Fig. 3g); None without targets or evaluated rounds."""
    summary = summarize(rounds)
    if not targets or summary is None:
        return None
    labeled = with_labels(rounds)
    keys = [c for c in identity_columns(labeled) if c != "seed"] + ["split", "model", "method"]
    entries: list[dict[str, Any]] = []
    for _, group in summary.iterrows():
        mask = np.ones(len(labeled), bool)
        for c in keys:
            value = group[c]
            mask &= labeled[c].isna().to_numpy() if pd.isna(value) else (labeled[c] == value).to_numpy()
        for target, numbers in line_targets(labeled[mask], targets):
            entries.append({**{str(k): v for k, v in group.items()}, "target": target.accuracy, **numbers})
    if not entries:
        return None
    table = pd.DataFrame(entries)
    table["gb_saving"] = math.nan
    for _, same in table.groupby(["data.dataset", "split", "method", "target"], sort=False):
        original = same[same["model.parameterization"] == "original"]
        if len(original) == 1:
            table.loc[same.index, "gb_saving"] = original["gb_to_target"].iloc[0] / same["gb_to_target"]
    return table


def first_rows(rows: pd.DataFrame) -> list[tuple[str, dict[str, Any]]]:
    """Each trial's first row as a dict (what a target's config fields are matched against)."""
    return [(str(trial), {str(k): v for k, v in trial_rows.iloc[0].items()})
            for trial, trial_rows in rows.groupby("trial", sort=True)]


def line_targets(line: pd.DataFrame,
                  targets: list[Target] | tuple[Target, ...]) -> list[tuple[Target, dict[str, Any]]]:
    """For one trial group (its seeds' rows): each target that applies, with its rounds and GB over the seeds."""
    firsts = first_rows(line)
    found = []
    for target in targets:
        if firsts and target.applies(firsts[0][1]):
            trials = sorted(line.groupby("trial", sort=True), key=lambda item: item[1]["seed"].iloc[0])  # by seed
            per_seed = [reached(trial_rows, target.accuracy) for _, trial_rows in trials]
            found.append((target, over_seeds(per_seed)))
    return found


def with_labels(rounds: pd.DataFrame) -> pd.DataFrame:
    """Add the readable ``split`` and ``model`` labels every figure and table groups by."""
    rounds = rounds.copy()
    rounds["split"] = [split_label(*r) for r in rounds[SPLIT_COLUMNS].itertuples(index=False)]
    rounds["model"] = [model_label(*r) for r in rounds[["model.arch", "model.parameterization", "model.gamma",
                                                         "model.ratio"]].itertuples(index=False)]
    rounds["method"] = [method_label(*r) for r in rounds[METHOD].itertuples(index=False)]
    return rounds


def identity_columns(frame: pd.DataFrame) -> list[str]:
    """Config columns that make trials different experiments (not where or how they ran)."""
    return [c for c in experiment_columns(config_columns()) if c in frame.columns]


def series_columns(frame: pd.DataFrame, panel: list[str] = PANEL) -> list[str]:
    """Identity columns (but seed) that vary inside at least one panel (by default a (dataset, split))."""
    shown = {*panel, *SPLIT_COLUMNS}  # every panel has one split: the columns it is made of never vary inside
    candidates = [c for c in identity_columns(frame) if c != "seed" and c not in shown]
    varying: set[str] = set()
    for _, rows in frame.groupby(panel, sort=False):
        varying.update(c for c in candidates if rows[c].astype(str).nunique() > 1)
    return [c for c in candidates if c in varying]


def value_text(row: pd.Series, column: str) -> str:
    value = row[column]
    if column in ("algorithm.name", "method"):
        return str(value)
    if column == "model.parameterization":
        return str(value)
    shown = "-" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f"{value:g}" if isinstance(value, float) else str(value))
    return f"{column.split('.')[-1]}={shown}"


def sort_key(row: pd.Series) -> tuple:
    def number(value: Any) -> float:
        return -1.0 if value is None or pd.isna(value) else float(value)

    algorithm, levels = row.get("algorithm.name"), row.get("upload.quantize_levels")
    return (str(row.get("model.arch", "")), PARAMETERIZATION_ORDER.get(str(row.get("model.parameterization")), 9),
            number(row.get("model.gamma")), number(row.get("model.ratio")),
            list(REGISTRY).index(algorithm) if algorithm in REGISTRY else 99, number(levels))


def ordered_groups(frame: pd.DataFrame, keys: list[str]) -> list[tuple[Any, pd.DataFrame]]:
    """Group rows by ``keys`` (NaN is a value) in a stable, readable order: by model, then algorithm."""
    if not keys:
        return [((), frame)]
    groups = list(frame.groupby(keys, dropna=False, sort=False))
    return sorted(groups, key=lambda item: (sort_key(item[1].iloc[0]), str(item[0])))


def sorted_panels(frame: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """(dataset, split) panels: datasets alphabetically, then IID, Dirichlet, pathological, natural."""
    groups = frame.groupby(PANEL, sort=False)
    return sorted((((str(key[0]), str(key[1])), rows) for key, rows in groups),
                  key=lambda item: (item[0][0], *split_rank(item[0][1])))


def split_rank(split: str) -> tuple[int, str]:
    """IID, Dirichlet, pathological, natural: by the partition a label starts with
    (runner/trial_identity.py ``split_label``)."""
    kind = re.split(r"[(,]", split, maxsplit=1)[0]
    return (SPLIT_ORDER.index(kind) if kind in SPLIT_ORDER else len(SPLIT_ORDER), split)
