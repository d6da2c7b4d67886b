"""The paper's figures from a sweep's rounds Parquet, and where ``python -m runner.plot`` writes them with
``tables.md`` (runner/study/tables.py); the numbers they show come from runner/study/summary.py.

- Figure 3: test accuracy vs cumulative transferred GB (down + up), a panel per (dataset, split), a line
  per model (and per algorithm or other setting where those vary inside the panel); a star where a line reaches
  a target accuracy (runner/study/targets.py).
- Figure 4: final accuracy vs parameter ratio, a line per (dataset, split) for the factorized models,
  the original model as a dashed horizontal reference in the same color.
- The grid figure (sweeps/grid.yaml): final accuracy vs parameter ratio, a panel per (architecture, dataset),
  a line per split (Dirichlet α, IID, ...), the original model as a dashed reference in the split's color;
  drawn when the trials have more than one architecture or split.

Trials that differ only in ``seed`` form one line; a diverged group's points are not drawn. A figure whose data
is missing is skipped with the reason printed, never drawn half-empty.
"""

from __future__ import annotations

import io
import logging
import math
import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from runner.config import config_columns
from runner.engine.storage import Location
from runner.results_layout import FIGURE3, FIGURE4, GRID_FIGURE, TABLES, figures_dir
from runner.study.results import BYTES_PER_GB, FINAL_ROUNDS, load_rounds
from runner.study.summary import (
    GRID_PANEL,
    METHOD,
    MODEL,
    first_rows,
    line_targets,
    ordered_groups,
    series_columns,
    sorted_panels,
    split_rank,
    summarize,
    value_text,
    with_labels,
)
from runner.study.sweep_record import read_record
from runner.study.tables import tables_markdown
from runner.study.targets import Target, parse_targets

FIGURE3_FILE = FIGURE3  # the names' home: runner/results_layout.py
FIGURE4_FILE = FIGURE4
GRID_FIGURE_FILE = GRID_FIGURE
TABLES_FILE = TABLES
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
    out = Location(out_dir) if out_dir is not None else figures_dir(results_dir)
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
    evaluated = with_labels(rounds)
    evaluated = evaluated[evaluated["test_accuracy"].notna()]
    if evaluated.empty:
        log.warning("plot: Figure 3 skipped, no round has a test accuracy")
        return None
    series = series_columns(evaluated)
    panels = sorted_panels(evaluated)
    datasets = list(dict.fromkeys(panel[0] for panel, _ in panels))
    splits = sorted({panel[1] for panel, _ in panels}, key=split_rank)
    figure, axes = plt.subplots(len(datasets), len(splits), figsize=(5.2 * len(splits), 4.2 * len(datasets)),
                                squeeze=False, layout="constrained")
    labels = [_series_label(line.iloc[0], series) for _, line in ordered_groups(evaluated, series)]
    colors = {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(labels))}  # same model, same color
    used = set()
    for (panel, rows) in panels:
        ax = axes[datasets.index(panel[0])][splits.index(panel[1])]
        used.add(id(ax))
        for _, line in ordered_groups(rows, series):
            curve = line.groupby("round").agg(accuracy=("test_accuracy", "mean"),
                                              cumulative=("cumulative_bytes", "mean"))
            label = _series_label(line.iloc[0], series)
            ax.plot(curve["cumulative"] / BYTES_PER_GB, 100 * curve["accuracy"],
                    marker="." if len(curve) < 30 else None,
                    color=colors[label], label=label)
            for target, numbers in line_targets(line, targets):
                if not math.isnan(numbers["gb_to_target"]):
                    ax.plot([numbers["gb_to_target"]], [100 * target.accuracy], marker="*", markersize=12,
                            linestyle="none", color=colors[label], label=f"_{label} reaches {target.label()}")
        for target in [t for t in targets if any(t.applies(r) for _, r in first_rows(rows))]:
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
    extra = [c for c in series_columns(factorized) if c not in ("model.gamma", "model.ratio")]
    colors = {panel: f"C{i}" for i, (panel, _) in enumerate(sorted_panels(summary))}

    figure, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    for panel, in_panel in sorted_panels(factorized):
        _ratio_lines(ax, in_panel, extra, " ".join(panel), colors[panel])  # a color per (dataset, split)
    reference_extra = [c for c in series_columns(originals) if not c.startswith("model.")] if len(originals) else []
    for panel, in_panel in sorted_panels(originals):
        _reference_lines(ax, in_panel, reference_extra, " ".join(panel), colors[panel])
    ax.set_xlabel("parameters (% of the original model)")
    ax.set_ylabel(FINAL_LABEL)
    ax.set_title("Figure 4: accuracy vs parameter ratio")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return figure


def has_several_archs_or_splits(rounds: pd.DataFrame) -> bool:
    """Whether the grid figure has something to show: more than one architecture or more than one split."""
    labeled = with_labels(rounds)
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
    extra = [c for c in series_columns(factorized, cell) if c not in ("model.gamma", "model.ratio")]
    reference_extra = [c for c in series_columns(summary, cell) if not c.startswith("model.")]
    splits = sorted(summary["split"].unique(), key=split_rank)
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
            for split in sorted(in_panel["split"].unique(), key=split_rank):
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


def _series_label(first: pd.Series, series: list[str]) -> str:
    extra = [c for c in series if c not in MODEL + METHOD]
    if any(c in METHOD for c in series):
        extra.insert(0, "method")
    return first["model"] + "".join(f" · {value_text(first, c)}" for c in extra)


def _ratio_lines(ax: Any, rows: pd.DataFrame, extra: list[str], prefix: str, color: str) -> None:
    """Final accuracy against parameter ratio, a line (and a marker) per value of the ``extra`` settings."""
    for marker, (_, line) in zip(MARKERS, ordered_groups(rows, extra) if len(rows) else []):
        line = line.sort_values("param_ratio")
        label = prefix + "".join(f" · {value_text(line.iloc[0], c)}" for c in extra)
        ax.plot(100 * line["param_ratio"], 100 * line["final_accuracy"], marker=marker, color=color, label=label)


def _reference_lines(ax: Any, rows: pd.DataFrame, extra: list[str], prefix: str, color: str) -> None:
    """The original models' final accuracy as horizontal lines, a line style per value of ``extra``."""
    for style, (_, line) in zip(REFERENCE_STYLES, ordered_groups(rows, extra) if len(rows) else []):
        label = prefix + "".join(f" · {value_text(line.iloc[0], c)}" for c in extra)
        ax.axhline(100 * line["final_accuracy"].mean(), linestyle=style, linewidth=1, color=color,
                   label=f"{label} · original")
