"""runner.plot on a small, realistic rounds dataset written with the results schema.

Trials: VGG16 original / FedPara γ=0.1 / FedPara γ=0.5 on cifar10 IID, cifar10 Dirichlet(0.5) and
cifar100 IID; FedPara γ=0.1 on cifar10 IID has two seeds (averaged into one line). 12 rounds, evaluated
every 2nd round (NaN accuracy otherwise), so "the last 5 evaluated rounds" are rounds 4, 6, ..., 12.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from runner import plot as plot_cli
from runner.config import TrialConfig
from runner.study import figures as plot
from runner.study import summary, tables
from runner.study.results import parquet_bytes, rounds_path

ROUNDS = 12
EVAL_EVERY = 2
ORIGINAL_PARAMS = 1_000_000
RATIO = {None: 1.0, 0.1: 0.101, 0.5: 0.30}
CLIENTS = {"cifar10": 16, "cifar100": 8}


def accuracy(dataset: str, partition: str, gamma: float | None, seed: int, algorithm: str, round_: int, *,
             arch: str = "vgg16", alpha: float = 0.5) -> float:
    """A made-up learning curve; every term shifts one trial's numbers so mix-ups show."""
    level = {"cifar10": 0.60, "cifar100": 0.30}[dataset] - (0.025 / alpha if partition == "dirichlet" else 0.0)
    level += {None: 0.02, 0.1: 0.0, 0.5: 0.03}[gamma] + 0.01 * seed
    level += {"fedavg": 0, "fedprox": 0.004, "fedavg+q16": -0.006}[algorithm]
    level += {"vgg16": 0.0, "resnet18": 0.015}[arch]
    return level + 0.01 * round_


def upload_bytes(params: int, algorithm: str) -> int:
    return params * 4 // (8 if algorithm == "fedavg+q16" else 1)


def write_trial(results_dir: Path, dataset: str, partition: str, gamma: float | None, *, seed: int = 0,
                algorithm: str = "fedavg", sweep: str = "demo", arch: str = "vgg16", alpha: float = 0.5,
                rounds: int = ROUNDS, last_round: int | None = None) -> str:
    """A trial of ``rounds`` rounds whose rows are written up to ``last_round`` (a trial still running)."""
    cfg = TrialConfig.from_dict({
        "data": {"dataset": dataset, "partition": partition, "alpha": alpha, "num_clients": 50,
                 "clients_per_round": CLIENTS[dataset]},
        "model": {"arch": arch, "parameterization": "original" if gamma is None else "fedpara", "gamma": gamma},
        "train": {"rounds": rounds, "eval_every": EVAL_EVERY},
        "algorithm": {"name": algorithm.split("+q")[0]}, "seed": seed, "sweep": sweep,
        "upload": {"quantize_levels": int(algorithm.split("+q")[1]) if "+q" in algorithm else None},
        "logging": {"results_dir": str(results_dir)},
    })
    params = round(ORIGINAL_PARAMS * RATIO[gamma])
    down, up = CLIENTS[dataset] * params * 4, CLIENTS[dataset] * upload_bytes(params, algorithm)
    rows = []
    for r in range(1, (last_round or rounds) + 1):
        evaluated = r % EVAL_EVERY == 0
        acc = accuracy(dataset, partition, gamma, seed, algorithm, r, arch=arch, alpha=alpha) if evaluated else math.nan
        rows.append({**cfg.flat(), "trial": cfg.trial_name, "num_parameters": params,
                     "original_parameters": ORIGINAL_PARAMS, "param_ratio": params / ORIGINAL_PARAMS,
                     "params_sent": params, "round": r, "lr": 0.1, "clients": CLIENTS[dataset], "train_loss": 2.0 / r,
                     "test_accuracy": acc, "test_loss": 1.0 if evaluated else math.nan,
                     "bytes_down": down, "bytes_up": up, "bytes_round": down + up,
                     "cumulative_bytes": r * (down + up), "round_seconds": 1.0, "elapsed_seconds": float(r)})
    rounds_path(results_dir, cfg.trial_name).write_bytes(parquet_bytes(rows))
    return cfg.trial_name


def final_accuracy(*args, **kwargs) -> float:
    """Mean over the last 5 evaluated rounds: 4, 6, 8, 10, 12."""
    return float(np.mean([accuracy(*args, r, **kwargs) for r in range(4, ROUNDS + 1, EVAL_EVERY)]))


@pytest.fixture(scope="module")
def figure_results(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("results") / "demo"
    for dataset, partition in (("cifar10", "iid"), ("cifar10", "dirichlet"), ("cifar100", "iid")):
        for gamma in (None, 0.1, 0.5):
            write_trial(results, dataset, partition, gamma)
    write_trial(results, "cifar10", "iid", 0.1, seed=1)
    return results


@pytest.fixture(scope="module")
def rounds(figure_results):
    return plot.load_rounds(figure_results)


def test_the_dataset_has_the_contract_columns(rounds):
    for column in ("data.dataset", "data.partition", "model.arch", "model.parameterization", "model.gamma",
                   "algorithm.name", "seed", "trial", "param_ratio", "round", "test_accuracy", "cumulative_bytes"):
        assert column in rounds.columns
    assert rounds["trial"].nunique() == 10 and len(rounds) == 10 * ROUNDS
    assert rounds["test_accuracy"].isna().sum() == 10 * ROUNDS // 2


def test_figure3_one_panel_per_split_one_line_per_model_x_is_cumulative_gb(rounds):
    figure = plot.figure3(rounds)
    panels = {ax.get_title(): ax for ax in figure.axes if ax.get_visible()}
    assert set(panels) == {"cifar10 iid", "cifar10 dirichlet(α=0.5)", "cifar100 iid"}
    assert sum(not ax.get_visible() for ax in figure.axes) == 1  # the 2x2 grid has no cifar100 Dirichlet

    ax = panels["cifar10 iid"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == ["vgg16 original", "vgg16 fedpara γ=0.1", "vgg16 fedpara γ=0.5"]
    assert "GB" in ax.get_xlabel()

    seeds_averaged = lines["vgg16 fedpara γ=0.1"]
    evaluated = np.arange(EVAL_EVERY, ROUNDS + 1, EVAL_EVERY)
    bytes_round = 16 * round(ORIGINAL_PARAMS * 0.101) * 4 * 2
    np.testing.assert_allclose(seeds_averaged.get_xdata(), evaluated * bytes_round / 1e9)
    expected = [50 * (accuracy("cifar10", "iid", 0.1, 0, "fedavg", r) + accuracy("cifar10", "iid", 0.1, 1, "fedavg", r))
                for r in evaluated]
    np.testing.assert_allclose(seeds_averaged.get_ydata(), expected)

    original = lines["vgg16 original"]
    np.testing.assert_allclose(original.get_xdata(), evaluated * 16 * ORIGINAL_PARAMS * 8 / 1e9)
    assert len(panels["cifar100 iid"].get_lines()) == 3
    plt.close(figure)


def test_figure4_final_accuracy_vs_param_ratio_with_original_reference(rounds):
    figure = plot.figure4(rounds)
    ax = figure.axes[0]
    assert "last 5 evaluated rounds" in ax.get_ylabel()
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"cifar10 iid", "cifar10 dirichlet(α=0.5)", "cifar100 iid",
                          "cifar10 iid · original", "cifar10 dirichlet(α=0.5) · original", "cifar100 iid · original"}

    fedpara = lines["cifar10 dirichlet(α=0.5)"]
    np.testing.assert_allclose(fedpara.get_xdata(), [10.1, 30.0])
    np.testing.assert_allclose(fedpara.get_ydata(), [100 * final_accuracy("cifar10", "dirichlet", g, 0, "fedavg")
                                                     for g in (0.1, 0.5)])
    seeds = lines["cifar10 iid"].get_ydata()[0]
    assert seeds == pytest.approx(100 * np.mean([final_accuracy("cifar10", "iid", 0.1, s, "fedavg") for s in (0, 1)]))

    reference = lines["cifar100 iid · original"]
    original = 100 * final_accuracy("cifar100", "iid", None, 0, "fedavg")
    assert list(reference.get_ydata()) == pytest.approx([original] * 2)
    assert reference.get_linestyle() == "--"
    assert reference.get_color() == lines["cifar100 iid"].get_color()
    plt.close(figure)


def test_tables_markdown_has_final_accuracy_ratio_and_gb(rounds):
    text = tables.tables_markdown(rounds)
    header = "| model | algorithm | params (%) | cifar10 iid | cifar10 dirichlet(α=0.5) | cifar100 iid |"
    assert header in text
    a = [100 * final_accuracy(d, p, 0.5, 0, "fedavg") for d, p in
         (("cifar10", "iid"), ("cifar10", "dirichlet"), ("cifar100", "iid"))]
    assert f"| vgg16 fedpara γ=0.5 | fedavg | 30.0 | {a[0]:.2f} | {a[1]:.2f} | {a[2]:.2f} |" in text
    seeds = 100 * np.mean([final_accuracy("cifar10", "iid", 0.1, s, "fedavg") for s in (0, 1)])
    assert re.search(rf"\| vgg16 fedpara γ=0\.1 \| fedavg \| 10\.1 \| {seeds:.2f} \|", text)

    gb_original_cifar100 = ROUNDS * 8 * ORIGINAL_PARAMS * 8 / 1e9
    assert f"| vgg16 original | fedavg | {1.536:.3g} | {1.536:.3g} | {gb_original_cifar100:.3g} |" in text
    every = [line for line in text.splitlines() if line.startswith("| cifar10 | iid | vgg16 fedpara γ=0.1")]
    assert len(every) == 1 and every[0].endswith(f"| {ROUNDS} | 2 |")  # one group, two seeds


def test_tables_list_algorithms_as_rows_with_their_bytes(tmp_path):
    results = tmp_path / "table3"
    for algorithm in ("fedavg", "fedprox", "fedavg+q16"):  # the last is FedPAQ
        write_trial(results, "cifar10", "iid", 0.1, algorithm=algorithm, sweep="table3")
    text = tables.tables_markdown(plot.load_rounds(results))
    params = round(ORIGINAL_PARAMS * 0.101)
    for algorithm in ("fedavg", "fedprox", "fedavg+q16"):
        acc = 100 * final_accuracy("cifar10", "iid", 0.1, 0, algorithm)
        gb = ROUNDS * 16 * (params * 4 + upload_bytes(params, algorithm)) / 1e9
        assert f"| vgg16 fedpara γ=0.1 | {algorithm} | 10.1 | {acc:.2f} |" in text
        assert f"| vgg16 fedpara γ=0.1 | {algorithm} | {gb:.3g} |" in text
    rows = [line.split(" | ")[1] for line in text.splitlines() if line.startswith("| vgg16 fedpara γ=0.1 |")]
    assert rows[:3] == ["fedavg", "fedavg+q16", "fedprox"]  # the registry's algorithm order, plain upload first


def test_grid_figure_has_a_panel_per_arch_and_dataset_and_a_line_per_split(tmp_path):
    results = tmp_path / "grid"
    splits = [("dirichlet", 0.1), ("dirichlet", 1.0), ("iid", 0.5)]
    for arch in ("vgg16", "resnet18"):
        for partition, alpha in splits:
            for gamma in (None, 0.1, 0.5):
                write_trial(results, "cifar10", partition, gamma, arch=arch, alpha=alpha, sweep="grid")
    for gamma in (0.1, 0.5):  # one more dataset for VGG16 only, IID, without an original model
        write_trial(results, "cifar100", "iid", gamma, sweep="grid")
    rounds = plot.load_rounds(results)
    assert plot.has_several_archs_or_splits(rounds)
    figure = plot.figure_grid(rounds)
    panels = {ax.get_title(): ax for ax in figure.axes if ax.get_visible()}
    assert set(panels) == {"vgg16 · cifar10", "vgg16 · cifar100", "resnet18 · cifar10"}
    assert len(figure.axes) == 4  # rows: resnet18, vgg16; columns: up to 2 datasets (one hidden)
    split_labels = ["dirichlet(α=0.1)", "dirichlet(α=1)", "iid"]
    for arch in ("vgg16", "resnet18"):
        ax = panels[f"{arch} · cifar10"]
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {*split_labels, *(f"{s} · original" for s in split_labels)}
        for (partition, alpha), label in zip(splits, split_labels):
            x, y = lines[label].get_data()
            assert list(x) == pytest.approx([10.1, 30.0])  # FedPara γ=0.1, 0.5 by parameter ratio
            expected = [100 * final_accuracy("cifar10", partition, g, 0, "fedavg", arch=arch, alpha=alpha)
                        for g in (0.1, 0.5)]
            assert list(y) == pytest.approx(expected)
            reference = lines[f"{label} · original"]
            assert reference.get_linestyle() == "--" and reference.get_color() == lines[label].get_color()
            assert reference.get_ydata()[0] == pytest.approx(
                100 * final_accuracy("cifar10", partition, None, 0, "fedavg", arch=arch, alpha=alpha))
        # the same split has the same color in every panel; splits differ
        assert len({lines[label].get_color() for label in split_labels}) == 3
    assert {line.get_label() for line in panels["vgg16 · cifar100"].get_lines()} == {"iid"}
    assert panels["vgg16 · cifar100"].get_lines()[0].get_color() == \
        {line.get_label(): line for line in panels["vgg16 · cifar10"].get_lines()}["iid"].get_color()
    plt.close(figure)
    # one architecture, one split: no grid figure (Figure 4 says it all)
    assert not plot.has_several_archs_or_splits(rounds[rounds["data.dataset"] == "cifar100"])


def test_plot_results_writes_every_file(figure_results, tmp_path, capsys):
    out = tmp_path / "figures"
    written = plot.plot_results(figure_results, out)
    # two splits (IID, Dirichlet): the grid figure too
    assert [p.name for p in written] == [plot.FIGURE3_FILE, plot.FIGURE4_FILE, plot.GRID_FIGURE_FILE, plot.TABLES_FILE]
    for path in written[:3]:
        image = path.read_bytes()
        assert image[:8] == b"\x89PNG\r\n\x1a\n" and len(image) > 10_000
    assert plot_cli.main([str(figure_results), "--out", str(tmp_path / "cli")]) == 0
    assert str(tmp_path / "cli" / plot.TABLES_FILE) in capsys.readouterr().out


def test_figures_are_skipped_with_a_reason(tmp_path, caplog):
    only_original = tmp_path / "original"
    write_trial(only_original, "cifar10", "iid", None)
    assert plot.figure4(plot.load_rounds(only_original)) is None
    assert "no factorized" in caplog.text
    caplog.clear()

    no_reference = tmp_path / "fedpara_only"
    write_trial(no_reference, "cifar10", "iid", 0.1)
    figure = plot.figure4(plot.load_rounds(no_reference))
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["cifar10 iid"]
    assert "without the original-model reference" in caplog.text
    plt.close(figure)

    unevaluated = plot.load_rounds(only_original).assign(test_accuracy=math.nan)
    assert plot.figure3(unevaluated) is None and tables.tables_markdown(unevaluated) is None
    assert "no round has a test accuracy" in caplog.text
    assert plot.plot_results(tmp_path / "empty") == []


def test_final_accuracy_is_the_mean_of_the_last_five_evaluated_rounds():
    """One definition (runner/study/results.py) for the W&B summary, tables.md and Figure 4."""
    from runner.study.results import final_accuracy

    nan = math.nan
    assert final_accuracy([nan, 0.1, nan, 0.2, 0.3, nan, 0.4, 0.5, 0.6]) == pytest.approx(0.4)
    assert final_accuracy([0.5, nan]) == 0.5
    assert math.isnan(final_accuracy([nan, nan])) and math.isnan(final_accuracy([]))
    assert plot.FINAL_LABEL.endswith("mean of the last 5 evaluated rounds")


def test_rows_written_before_client_fraction_existed_read_as_all_local_data(tmp_path):
    import pyarrow.parquet as pq

    name = write_trial(tmp_path, "cifar10", "iid", 0.1)
    path = rounds_path(tmp_path, name).local_path
    older = pq.read_table(path).drop_columns(["data.client_fraction"]).replace_schema_metadata(None)
    pq.write_table(older, path)  # an older file: without the column, and without the rows' digest
    assert "data.client_fraction" not in pq.read_schema(path).names
    rows = plot.load_rounds(tmp_path)
    assert (rows["data.client_fraction"] == 1.0).all() and len(rows) == ROUNDS
    assert set(summary.with_labels(rows)["split"]) == {"iid"}


def test_split_labels_sort_by_partition_also_with_scarce_local_data():

    labels = ["natural", "pathological(2 classes), 50% of local data", "iid, 50% of local data",
              "dirichlet(α=0.1), 10% of local data", "iid", "dirichlet(α=0.5)"]
    assert sorted(labels, key=summary.split_rank) == [
        "iid", "iid, 50% of local data", "dirichlet(α=0.1), 10% of local data", "dirichlet(α=0.5)",
        "pathological(2 classes), 50% of local data", "natural"]


def test_rounds_and_gb_to_target_accuracy_per_group_over_seeds(rounds):
    from runner.study.targets import Target

    cifar10_iid = {"data.dataset": "cifar10", "data.partition": "iid"}
    targets = [Target(0.665, cifar10_iid), Target(0.725, cifar10_iid), Target(0.9)]
    table = summary.target_summary(rounds, targets)
    iid = table[(table["data.dataset"] == "cifar10") & (table["split"] == "iid")].set_index(["model", "target"])

    def gb(rounds_done: float, gamma: float | None) -> float:
        return rounds_done * 16 * round(ORIGINAL_PARAMS * RATIO[gamma]) * 4 * 2 / 1e9

    # γ=0.1: seed 0 reaches 66.5 % at round 8 (66 % at round 6), seed 1 at round 6: 7 rounds on average
    fedpara = iid.loc[("vgg16 fedpara γ=0.1", 0.665)]
    assert (fedpara["rounds_to_target"], fedpara["seeds_reached"], fedpara["seeds"]) == (7, 2, 2)
    assert fedpara["gb_to_target"] == pytest.approx((gb(8, 0.1) + gb(6, 0.1)) / 2)
    original = iid.loc[("vgg16 original", 0.665)]
    assert original["rounds_to_target"] == 6 and original["gb_to_target"] == pytest.approx(gb(6, None))
    assert iid.loc[("vgg16 fedpara γ=0.5", 0.665)]["rounds_to_target"] == 4
    assert fedpara["gb_saving"] == pytest.approx(gb(6, None) / ((gb(8, 0.1) + gb(6, 0.1)) / 2))  # ≈ 8.5x
    half = iid.loc[("vgg16 fedpara γ=0.1", 0.725)]  # seed 1 ends at 73 %, seed 0 at 72 %: not reached
    assert math.isnan(half["rounds_to_target"]) and (half["seeds_reached"], half["seeds"]) == (1, 2)
    assert (fedpara["rounds_per_seed"], half["rounds_per_seed"]) == ("8, 6", "–, 12")  # seed 0, seed 1
    assert table[table["target"] == 0.9]["seeds_reached"].eq(0).all()
    assert len(table[table["target"] == 0.9]) == 9 and len(table[table["target"] == 0.665]) == 3  # where it applies

    text = tables.tables_markdown(rounds, targets)
    section = text[text.index("## Rounds and GB to the target accuracy"):]
    assert re.search(r"\| cifar10 \| iid \| vgg16 fedpara γ=0.1 \| fedavg \| 66.5 \| [\d.]+ \| 7 \| "
                     rf"{gb(7, 0.1):.3g} \| 8.49 \| 8, 6 \|", section), section
    assert "| 72.5 | " in section and "not reached (1/2 seeds)" in section and "not reached (0/1 seeds)" in section
    assert "Rounds and GB" not in tables.tables_markdown(rounds)  # no targets, no section

    figure = plot.figure3(rounds, targets)
    ax = next(a for a in figure.axes if a.get_title() == "cifar10 iid")
    stars = {line.get_label(): (line.get_xdata()[0], line.get_ydata()[0]) for line in ax.get_lines()
             if line.get_marker() == "*"}
    assert stars["_vgg16 fedpara γ=0.1 reaches 66.5%"] == pytest.approx((gb(7, 0.1), 66.5))
    assert "_vgg16 fedpara γ=0.1 reaches 72.5%" not in stars and len(stars) == 5  # the other two reach both
    assert {line.get_label() for line in ax.get_lines()} >= {"target 66.5%", "target 72.5%", "target 90%"}
    plt.close(figure)


def test_runner_plot_takes_the_targets_the_sweep_was_started_with(tmp_path, capsys):
    from runner.study.sweep_record import SweepRecord

    results = tmp_path / "demo"
    write_trial(results, "cifar10", "iid", 0.1)
    assert plot_cli.main([str(results), "--out", str(tmp_path / "none")]) == 0  # no sweep.json: no targets
    assert "Rounds and GB" not in (tmp_path / "none" / plot.TABLES_FILE).read_text()
    SweepRecord.of("demo", "demo.yaml", {}, [], max_concurrent=None, max_failures=0,
                   targets=[{"accuracy": 0.665, "data.partition": "iid"}]).write(results)
    assert plot_cli.main([str(results), "--out", str(tmp_path / "out")]) == 0
    section = (tmp_path / "out" / plot.TABLES_FILE).read_text().split("## Rounds and GB to the target accuracy")[1]
    assert "| cifar10 | iid | vgg16 fedpara γ=0.1 | fedavg | 66.5 | " in section and "| 8 | " in section  # round 8
    capsys.readouterr()
