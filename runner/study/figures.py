"""The paper's figures and tables from a sweep's rounds Parquet (``python -m runner.plot`` draws them).

- Figure 3: test accuracy vs cumulative transferred GB (down + up), a panel per (dataset, split), a line
  per model (and per algorithm or other setting where those vary inside the panel).
- Figure 4: final accuracy vs parameter ratio, a line per (dataset, split) for the factorized models,
  the original model as a dashed horizontal reference in the same color.
- The grid figure (sweeps/grid.yaml): final accuracy vs parameter ratio, a panel per (architecture, dataset),
  a line per split (Dirichlet α, IID, ...), the original model as a dashed reference in the split's color;
  drawn when the trials have more than one architecture or split.
- ``tables.md``: final accuracy, parameter ratio and total GB per (dataset, split) x (model, algorithm)
  — the layout of Tables 2 and 3 — plus one row per trial group with every number; for a sweep that names target
  accuracies (runner/study/targets.py), the rounds and GB each group needs to reach them (Table 3, Fig. 3g), which
  Figure 3 marks too.

"Final accuracy" is a trial's mean test accuracy over its last 5 evaluated rounds
(runner/study/results.py ``final_accuracy``, also the W&B summary's ``final_test_accuracy``), then averaged
over seeds; trials that differ only in ``seed`` form one group (one line, one table cell). A group with a
diverged trial has no final accuracy: its cells say "diverged at round r" and its figure points are not drawn.
A figure whose data is missing is skipped with the reason printed, never drawn half-empty.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from runner.algorithms import REGISTRY
from runner.config import config_columns
from runner.engine.storage import Location
from runner.study.results import BYTES_PER_GB, FINAL_ROUNDS, diverged_text, final_accuracy, load_rounds
from runner.study.sweep_record import read_record
from runner.study.targets import Target, over_seeds, parse_targets, reached

FIGURE3_FILE = "fig3_accuracy_vs_gb.png"
FIGURE4_FILE = "fig4_accuracy_vs_param_ratio.png"
GRID_FIGURE_FILE = "grid_accuracy_vs_param_ratio.png"
TABLES_FILE = "tables.md"
PANEL = ["data.dataset", "split"]
GRID_PANEL = ["model.arch", "data.dataset"]
SPLIT_COLUMNS = ["data.partition", "data.alpha", "data.classes_per_client", "data.client_fraction"]  # -> "split"
MODEL = ["model.arch", "model.parameterization", "model.gamma", "model.ratio", "model.tanh"]
METHOD = ["algorithm.name", "upload.quantize_levels"]  # shown together as one label: fedavg, fedavg+q16, ...
SPLIT_ORDER = ("iid", "dirichlet", "pathological", "natural")
PARAMETERIZATION_ORDER = {"original": 0, "lowrank": 1, "fedpara": 2, "pfedpara": 3}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*") * 4
REFERENCE_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1))) * 8
log = logging.getLogger(__name__)
FINAL_LABEL = f"final test accuracy (%), mean of the last {FINAL_ROUNDS} evaluated rounds"


def plot_results(results_dir: str | os.PathLike[str] | Location,
                 out_dir: str | os.PathLike[str] | Location | None = None,
                 rounds: pd.DataFrame | None = None, targets: list[Target] | None = None) -> list[Location]:
    """Write Figure 3, Figure 4, the grid figure (several archs or splits) and tables.md for one sweep's results
    (a path or a URI; ``rounds``: its rows, if already read; ``targets``: by default those the sweep was started
    with, from its sweep.json); returns the files."""
    out = Location(out_dir) if out_dir is not None else Location(results_dir) / "figures"
    if targets is None:
        record = read_record(results_dir if isinstance(results_dir, Location) else str(results_dir))
        targets = parse_targets(record.targets, config_columns()) if record is not None and record.targets else []
    if rounds is None:
        try:
            rounds = load_rounds(results_dir)
        except FileNotFoundError as error:
            log.warning("plot: skipped, %s", error)
            return []
    written: list[Location] = []
    figures: list[tuple[Any, str]] = [(lambda r: figure3(r, targets), FIGURE3_FILE), (figure4, FIGURE4_FILE)]
    if has_several_archs_or_splits(rounds):
        figures.append((figure_grid, GRID_FIGURE_FILE))
    for make, name in figures:
        figure = make(rounds)
        if figure is not None:
            image = io.BytesIO()
            figure.savefig(image, format="png", dpi=120, bbox_inches="tight")
            plt.close(figure)
            (out / name).write_bytes(image.getvalue())
            written.append(out / name)
    tables = tables_markdown(rounds, targets)
    if tables is not None:
        (out / TABLES_FILE).write_bytes(tables.encode())
        written.append(out / TABLES_FILE)
    return written


def figure3(rounds: pd.DataFrame, targets: list[Target] | tuple[Target, ...] = ()) -> Figure | None:
    """Test accuracy vs cumulative transferred GB; one panel per (dataset, split). Each target accuracy of the
    panel's trials is a dotted line, and a star marks where a line reaches it (seed-averaged GB, every seed)."""
    evaluated = _with_labels(rounds)
    evaluated = evaluated[evaluated["test_accuracy"].notna()]
    if evaluated.empty:
        log.warning("plot: Figure 3 skipped, no round has a test accuracy")
        return None
    series = _series_columns(evaluated)
    panels = _sorted_panels(evaluated)
    datasets = list(dict.fromkeys(panel[0] for panel, _ in panels))
    splits = sorted({panel[1] for panel, _ in panels}, key=_split_rank)
    figure, axes = plt.subplots(len(datasets), len(splits), figsize=(5.2 * len(splits), 4.2 * len(datasets)),
                                squeeze=False, layout="constrained")
    labels = [_series_label(line.iloc[0], series) for _, line in _ordered_groups(evaluated, series)]
    colors = {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(labels))}  # same model, same color
    used = set()
    for (panel, rows) in panels:
        ax = axes[datasets.index(panel[0])][splits.index(panel[1])]
        used.add(id(ax))
        for _, line in _ordered_groups(rows, series):
            curve = line.groupby("round").agg(accuracy=("test_accuracy", "mean"),
                                              cumulative=("cumulative_bytes", "mean"))
            label = _series_label(line.iloc[0], series)
            ax.plot(curve["cumulative"] / BYTES_PER_GB, 100 * curve["accuracy"],
                    marker="." if len(curve) < 30 else None,
                    color=colors[label], label=label)
            for target, numbers in _line_targets(line, targets):
                if not math.isnan(numbers["gb_to_target"]):
                    ax.plot([numbers["gb_to_target"]], [100 * target.accuracy], marker="*", markersize=12,
                            linestyle="none", color=colors[label], label=f"_{label} reaches {target.label()}")
        for target in [t for t in targets if any(t.applies(r) for _, r in _first_rows(rows))]:
            ax.axhline(100 * target.accuracy, linestyle=":", linewidth=1, color="0.4",
                       label=f"target {target.label()}")
        ax.set_title(" ".join(panel))
        ax.set_xlabel("transferred (GB, download + upload, cumulative)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes.flat:
        if id(ax) not in used:
            ax.set_visible(False)
    figure.suptitle("Figure 3: accuracy vs communication")
    return figure


def figure4(rounds: pd.DataFrame) -> Figure | None:
    """Final accuracy vs parameter ratio for factorized models, the original model as a reference."""
    summaries = _summary_with_factorized(rounds, "Figure 4")
    if summaries is None:
        return None
    summary, factorized = summaries
    originals = summary[summary["model.parameterization"] == "original"]
    if originals.empty:
        log.warning("plot: Figure 4 drawn without the original-model reference line: no original-model trial")
    # Lines split further only on settings that vary inside one (dataset, split), other than the knob itself.
    extra = [c for c in _series_columns(factorized) if c not in ("model.gamma", "model.ratio")]
    colors = {panel: f"C{i}" for i, (panel, _) in enumerate(_sorted_panels(summary))}

    figure, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    for panel, in_panel in _sorted_panels(factorized):
        _ratio_lines(ax, in_panel, extra, " ".join(panel), colors[panel])  # a color per (dataset, split)
    reference_extra = [c for c in _series_columns(originals) if not c.startswith("model.")] if len(originals) else []
    for panel, in_panel in _sorted_panels(originals):
        _reference_lines(ax, in_panel, reference_extra, " ".join(panel), colors[panel])
    ax.set_xlabel("parameters (% of the original model)")
    ax.set_ylabel(FINAL_LABEL)
    ax.set_title("Figure 4: accuracy vs parameter ratio")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return figure


def has_several_archs_or_splits(rounds: pd.DataFrame) -> bool:
    """Whether the grid figure has something to show: more than one architecture or more than one split."""
    labeled = _with_labels(rounds)
    return labeled["model.arch"].nunique() > 1 or labeled["split"].nunique() > 1


def figure_grid(rounds: pd.DataFrame) -> Figure | None:
    """Final accuracy vs parameter ratio: a panel per (architecture, dataset), a line per split, the original
    model as a dashed reference in its split's color (rows: architectures; columns: their datasets)."""
    summaries = _summary_with_factorized(rounds, "grid figure")
    if summaries is None:
        return None
    summary, factorized = summaries
    cell = [*GRID_PANEL, "split"]
    # Lines split further only on settings that vary inside one (architecture, dataset, split), but the knob.
    extra = [c for c in _series_columns(factorized, cell) if c not in ("model.gamma", "model.ratio")]
    reference_extra = [c for c in _series_columns(summary, cell) if not c.startswith("model.")]
    splits = sorted(summary["split"].unique(), key=_split_rank)
    colors = {split: f"C{i % 10}" for i, split in enumerate(splits)}
    archs = sorted(summary["model.arch"].unique())
    datasets = {arch: sorted(summary.loc[summary["model.arch"] == arch, "data.dataset"].unique()) for arch in archs}
    columns = max(len(d) for d in datasets.values())
    figure, axes = plt.subplots(len(archs), columns, figsize=(5.2 * columns, 4.2 * len(archs)), squeeze=False,
                                layout="constrained")
    for row, arch in enumerate(archs):
        for column in range(columns):
            ax = axes[row][column]
            if column >= len(datasets[arch]):
                ax.set_visible(False)
                continue
            dataset = datasets[arch][column]
            in_panel = summary[(summary["model.arch"] == arch) & (summary["data.dataset"] == dataset)]
            for split in sorted(in_panel["split"].unique(), key=_split_rank):
                rows = in_panel[in_panel["split"] == split]
                original = rows["model.parameterization"] == "original"
                _ratio_lines(ax, rows[~original], extra, split, colors[split])
                _reference_lines(ax, rows[original], reference_extra, split, colors[split])
            ax.set_title(f"{arch} · {dataset}")
            ax.set_xlabel("parameters (% of the original model)")
            ax.set_ylabel("final test accuracy (%)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
    figure.suptitle("Accuracy vs parameter ratio by architecture, dataset and split\n"
                    f"(final test accuracy: mean of the last {FINAL_ROUNDS} evaluated rounds)")
    return figure


def _summary_with_factorized(rounds: pd.DataFrame, figure: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The trials' summary and its factorized-model rows, for a figure of accuracy against parameter ratio;
    None, with the reason logged, when there is nothing to draw."""
    summary = summarize(rounds)
    if summary is None:
        log.warning("plot: %s skipped, no round has a test accuracy", figure)
        return None
    factorized = summary[summary["model.parameterization"] != "original"]
    if factorized.empty:
        log.warning("plot: %s skipped, no factorized (lowrank/fedpara/pfedpara) model among the trials", figure)
        return None
    return summary, factorized


def summarize(rounds: pd.DataFrame) -> pd.DataFrame | None:
    """One row per trial group (trials equal but for ``seed``) with its final numbers."""
    rounds = _with_labels(rounds)
    diverged = rounds["diverged"].notna() if "diverged" in rounds else pd.Series(False, index=rounds.index)
    if rounds["test_accuracy"].isna().all() and not diverged.any():
        return None
    identity = _identity_columns(rounds)
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


def _first_rows(rows: pd.DataFrame) -> list[tuple[str, dict[str, Any]]]:
    """Each trial's first row as a dict (what a target's config fields are matched against)."""
    return [(str(trial), {str(k): v for k, v in trial_rows.iloc[0].items()})
            for trial, trial_rows in rows.groupby("trial", sort=True)]


def _line_targets(line: pd.DataFrame,
                  targets: list[Target] | tuple[Target, ...]) -> list[tuple[Target, dict[str, Any]]]:
    """For one trial group (its seeds' rows): each target that applies, with its rounds and GB over the seeds."""
    firsts = _first_rows(line)
    found = []
    for target in targets:
        if firsts and target.applies(firsts[0][1]):
            trials = sorted(line.groupby("trial", sort=True), key=lambda item: item[1]["seed"].iloc[0])  # by seed
            per_seed = [reached(trial_rows, target.accuracy) for _, trial_rows in trials]
            found.append((target, over_seeds(per_seed)))
    return found


def target_summary(rounds: pd.DataFrame, targets: list[Target] | tuple[Target, ...]) -> pd.DataFrame | None:
    """One row per (trial group, target that applies to it): the rounds and GB to reach it, over seeds, beside
    the group's final accuracy, and how many times fewer GB than the original model of its panel and algorithm
    needed (Fig. 3g); None without targets or evaluated rounds."""
    summary = summarize(rounds)
    if not targets or summary is None:
        return None
    labeled = _with_labels(rounds)
    keys = [c for c in _identity_columns(labeled) if c != "seed"] + ["split", "model", "method"]
    entries: list[dict[str, Any]] = []
    for _, group in summary.iterrows():
        mask = np.ones(len(labeled), bool)
        for c in keys:
            value = group[c]
            mask &= labeled[c].isna().to_numpy() if pd.isna(value) else (labeled[c] == value).to_numpy()
        for target, numbers in _line_targets(labeled[mask], targets):
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


def tables_markdown(rounds: pd.DataFrame, targets: list[Target] | tuple[Target, ...] = ()) -> str | None:
    """Tables 2/3 as markdown: accuracy and GB per (dataset, split) x (model, algorithm), then every group, then
    the rounds and GB to each target accuracy."""
    summary = summarize(rounds)
    if summary is None:
        log.warning("plot: tables skipped, no round has a test accuracy")
        return None
    sweeps = ", ".join(sorted(str(s) for s in rounds["sweep"].dropna().unique())) or "results"
    panels = [panel for panel, _ in _sorted_panels(summary)]
    extra = [c for c in _series_columns(summary) if c not in MODEL + METHOD]
    row_keys = ["model", "method", *extra]
    rows = list(_ordered_groups(summary, row_keys))

    def row_head(first: pd.Series) -> list[str]:
        return [first["model"], first["method"], *(_value_text(first, c) for c in extra)]

    head = ["model", "algorithm", *extra]
    text = [f"# {sweeps}: final accuracy, parameters and communication", "",
            f"Final accuracy: mean test accuracy over the last {FINAL_ROUNDS} evaluated rounds of each trial, "
            "averaged over seeds. Params: the model's size as a % of the original model's. "
            "Total GB: bytes sent down and up over all rounds, in 10^9 bytes.", "",
            "## Final test accuracy (%) by (dataset, split): Tables 2 and 3", ""]
    text += _markdown_table(
        [*head, "params (%)", *(" ".join(p) for p in panels)],
        [[*row_head(group.iloc[0]), _range_text(100 * group["param_ratio"], "{:.1f}"),
          *(_cell(group, p, "final_accuracy", 100, "{:.2f}") for p in panels)] for _, group in rows])
    text += ["", "## Total transferred (GB) by (dataset, split)", ""]
    text += _markdown_table(
        [*head, *(" ".join(p) for p in panels)],
        [[*row_head(group.iloc[0]), *(_cell(group, p, "total_gb", 1, "{:.3g}") for p in panels)] for _, group in rows])
    text += ["", "## Every trial group", ""]
    every = []
    for panel, in_panel in _sorted_panels(summary):
        for _, group in _ordered_groups(in_panel, row_keys):
            for _, r in group.iterrows():
                std = r["final_accuracy_std"]
                every.append([*panel, *row_head(r), f"{100 * r['param_ratio']:.1f}", _accuracy_text(r),
                              "" if pd.isna(std) or not pd.isna(r["diverged_at"]) else f"{100 * std:.2f}",
                              f"{r['total_gb']:.3g}", str(r["rounds"]), str(r["seeds"])])
    text += _markdown_table(["dataset", "split", *head, "params (%)", "final acc (%)", "std (%)", "total GB",
                             "rounds", "seeds"], every)
    reached_table = target_summary(rounds, targets)
    if reached_table is not None:
        text += ["", "## Rounds and GB to the target accuracy", "",
                 "The first evaluated round at which a trial's test accuracy reaches the target, and its cumulative "
                 "GB (down + up) then, averaged over seeds when every seed reached it; otherwise \"not reached\" "
                 "(with how many seeds did). × fewer GB: the original model's GB to the same target (same panel and "
                 "algorithm) over this model's (Figure 3g). Rounds per seed: each trial's, by seed.", ""]
        lines = []
        for panel, in_panel in _sorted_panels(reached_table):
            for _, group in _ordered_groups(in_panel, [*row_keys, "target"]):
                for _, r in group.iterrows():
                    missed = f"not reached ({r['seeds_reached']}/{r['seeds']} seeds)"
                    done = not pd.isna(r["rounds_to_target"])
                    lines.append([*panel, *row_head(r), f"{100 * r['target']:g}", f"{100 * r['final_accuracy']:.2f}",
                                  f"{r['rounds_to_target']:g}" if done else missed,
                                  f"{r['gb_to_target']:.3g}" if done else missed,
                                  "" if pd.isna(r["gb_saving"]) else f"{r['gb_saving']:.2f}", r["rounds_per_seed"]])
        text += _markdown_table(["dataset", "split", *head, "target (%)", "final acc (%)", "rounds to target",
                                 "GB to target", "× fewer GB than original", "rounds per seed"], lines)
    return "\n".join(text) + "\n"


def _with_labels(rounds: pd.DataFrame) -> pd.DataFrame:
    """Add the readable ``split`` and ``model`` labels every figure and table groups by."""
    rounds = rounds.copy()
    rounds["split"] = [_split_label(r) for r in rounds[SPLIT_COLUMNS].itertuples(index=False)]
    rounds["model"] = [_model_label(*r) for r in rounds[["model.arch", "model.parameterization", "model.gamma",
                                                         "model.ratio"]].itertuples(index=False)]
    rounds["method"] = [_method_label(*r) for r in rounds[METHOD].itertuples(index=False)]
    return rounds


def _split_label(row: Any) -> str:
    partition, alpha, classes, fraction = row
    label = str(partition)
    if partition == "dirichlet":
        label = f"dirichlet(α={alpha:g})"
    elif partition == "pathological":
        label = f"pathological({int(classes)} classes)"
    if not pd.isna(fraction) and fraction != 1:
        label += f", {100 * fraction:g}% of local data"
    return label


def _model_label(arch: str, parameterization: str, gamma: float | None, ratio: float | None) -> str:
    label = f"{arch} {parameterization}"
    if parameterization != "original":
        if gamma is not None and not pd.isna(gamma):
            label += f" γ={gamma:g}"
        elif ratio is not None and not pd.isna(ratio):
            label += f" ρ={ratio:g}"
    return label


def _method_label(algorithm: str, quantize_levels: float | None) -> str:
    """The algorithm, and how its upload is quantized: ``fedavg+q16`` is FedPAQ."""
    if quantize_levels is None or pd.isna(quantize_levels):
        return str(algorithm)
    return f"{algorithm}+q{int(quantize_levels)}"


def _identity_columns(frame: pd.DataFrame) -> list[str]:
    """Config columns that make trials different experiments (not where or how they ran)."""
    return [c for c in config_columns() if c in frame.columns
            and not c.startswith(("logging.", "resources.")) and c not in ("name", "sweep")]


def _series_columns(frame: pd.DataFrame, panel: list[str] = PANEL) -> list[str]:
    """Identity columns (but seed) that vary inside at least one panel (by default a (dataset, split))."""
    shown = {*panel, *SPLIT_COLUMNS}  # every panel has one split: the columns it is made of never vary inside
    candidates = [c for c in _identity_columns(frame) if c != "seed" and c not in shown]
    varying: set[str] = set()
    for _, rows in frame.groupby(panel, sort=False):
        varying.update(c for c in candidates if rows[c].astype(str).nunique() > 1)
    return [c for c in candidates if c in varying]


def _series_label(first: pd.Series, series: list[str]) -> str:
    extra = [c for c in series if c not in MODEL + METHOD]
    if any(c in METHOD for c in series):
        extra.insert(0, "method")
    return first["model"] + "".join(f" · {_value_text(first, c)}" for c in extra)


def _value_text(row: pd.Series, column: str) -> str:
    value = row[column]
    if column in ("algorithm.name", "method"):
        return str(value)
    if column == "model.parameterization":
        return str(value)
    shown = "-" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f"{value:g}" if isinstance(value, float) else str(value))
    return f"{column.split('.')[-1]}={shown}"


def _sort_key(row: pd.Series) -> tuple:
    def number(value: Any) -> float:
        return -1.0 if value is None or pd.isna(value) else float(value)

    algorithm, levels = row.get("algorithm.name"), row.get("upload.quantize_levels")
    return (str(row.get("model.arch", "")), PARAMETERIZATION_ORDER.get(str(row.get("model.parameterization")), 9),
            number(row.get("model.gamma")), number(row.get("model.ratio")),
            list(REGISTRY).index(algorithm) if algorithm in REGISTRY else 99, number(levels))


def _ordered_groups(frame: pd.DataFrame, keys: list[str]) -> list[tuple[Any, pd.DataFrame]]:
    """Group rows by ``keys`` (NaN is a value) in a stable, readable order: by model, then algorithm."""
    if not keys:
        return [((), frame)]
    groups = list(frame.groupby(keys, dropna=False, sort=False))
    return sorted(groups, key=lambda item: (_sort_key(item[1].iloc[0]), str(item[0])))


def _sorted_panels(frame: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """(dataset, split) panels: datasets alphabetically, then IID, Dirichlet, pathological, natural."""
    groups = frame.groupby(PANEL, sort=False)
    return sorted((((str(key[0]), str(key[1])), rows) for key, rows in groups),
                  key=lambda item: (item[0][0], *_split_rank(item[0][1])))


def _ratio_lines(ax: Any, rows: pd.DataFrame, extra: list[str], prefix: str, color: str) -> None:
    """Final accuracy against parameter ratio, a line (and a marker) per value of the ``extra`` settings."""
    for marker, (_, line) in zip(MARKERS, _ordered_groups(rows, extra) if len(rows) else []):
        line = line.sort_values("param_ratio")
        label = prefix + "".join(f" · {_value_text(line.iloc[0], c)}" for c in extra)
        ax.plot(100 * line["param_ratio"], 100 * line["final_accuracy"], marker=marker, color=color, label=label)


def _reference_lines(ax: Any, rows: pd.DataFrame, extra: list[str], prefix: str, color: str) -> None:
    """The original models' final accuracy as horizontal lines, a line style per value of ``extra``."""
    for style, (_, line) in zip(REFERENCE_STYLES, _ordered_groups(rows, extra) if len(rows) else []):
        label = prefix + "".join(f" · {_value_text(line.iloc[0], c)}" for c in extra)
        ax.axhline(100 * line["final_accuracy"].mean(), linestyle=style, linewidth=1, color=color,
                   label=f"{label} · original")


def _split_rank(split: str) -> tuple[int, str]:
    """IID, Dirichlet, pathological, natural: by the partition a label starts with (see :func:`_split_label`)."""
    kind = re.split(r"[(,]", split, maxsplit=1)[0]
    return (SPLIT_ORDER.index(kind) if kind in SPLIT_ORDER else len(SPLIT_ORDER), split)


def _cell(group: pd.DataFrame, panel: tuple[str, str], column: str, scale: float, fmt: str) -> str:
    rows = group[(group["data.dataset"] == panel[0]) & (group["split"] == panel[1])]
    if column == "final_accuracy" and rows["diverged_at"].notna().any():
        return diverged_text(int(rows["diverged_at"].min()))
    return "–" if rows.empty else fmt.format(scale * rows[column].mean())


def _accuracy_text(group: pd.Series) -> str:
    """A trial group's final accuracy in %, or where it diverged (never a number for a diverged group)."""
    if not pd.isna(group["diverged_at"]):
        return diverged_text(int(group["diverged_at"]))
    return f"{100 * group['final_accuracy']:.2f}"


def _range_text(values: pd.Series, fmt: str) -> str:
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    return fmt.format(low) if fmt.format(low) == fmt.format(high) else f"{fmt.format(low)}–{fmt.format(high)}"


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]
