"""``tables.md``: final accuracy, parameter ratio and total GB per (dataset, split) x (model, algorithm), the
layout of the paper's Tables 2 and 3, then one row per trial group with every number, then for a sweep that names
target accuracies (runner/study/targets.py) the rounds and GB each group needs to reach them (Table 3, Fig. 3g).
The numbers come from runner/study/summary.py; a diverged group's cells say "diverged at round r".
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from runner.study.results import FINAL_ROUNDS, diverged_text
from runner.study.summary import (
    METHOD,
    MODEL,
    ordered_groups,
    series_columns,
    sorted_panels,
    summarize,
    target_summary,
    value_text,
)
from runner.study.targets import Target

log = logging.getLogger(__name__)


def tables_markdown(rounds: pd.DataFrame, targets: list[Target] | tuple[Target, ...] = ()) -> str | None:
    """Tables 2/3 as markdown: accuracy and GB per (dataset, split) x (model, algorithm), then every group, then
    the rounds and GB to each target accuracy."""
    summary = summarize(rounds)
    if summary is None:
        log.warning("plot: tables skipped, no round has a test accuracy")
        return None
    sweeps = ", ".join(sorted(str(s) for s in rounds["sweep"].dropna().unique())) or "results"
    panels = [panel for panel, _ in sorted_panels(summary)]
    extra = [c for c in series_columns(summary) if c not in MODEL + METHOD]
    row_keys = ["model", "method", *extra]
    rows = list(ordered_groups(summary, row_keys))

    def row_head(first: pd.Series) -> list[str]:
        return [first["model"], first["method"], *(value_text(first, c) for c in extra)]

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
    for panel, in_panel in sorted_panels(summary):
        for _, group in ordered_groups(in_panel, row_keys):
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
        for panel, in_panel in sorted_panels(reached_table):
            for _, group in ordered_groups(in_panel, [*row_keys, "target"]):
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
