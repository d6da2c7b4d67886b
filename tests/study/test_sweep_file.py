"""Sweep files: loading, validation errors, expansion, the Tune search space, and the CLI's dry run.

Nothing here starts Ray: the Tune search space is expanded with Tune's own variant generator, and the
CLI is exercised through ``--dry-run`` and with ``ray.init``/``Tuner`` replaced by recorders.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from ray.tune.search.variant_generator import generate_variants

from runner import sweep as sweep_cli
from runner.config import TrialConfig
from runner.engine.layout import TrialLayout
from runner.study import capacity, tune_sweep
from runner.study.capacity import Capacity, NodeShape
from runner.study.console_view import SweepProgress
from runner.study.sweep_expand import (
    expand,
    merge_trial,
    param_space,
    trial_config_from_tune,
    trial_count,
    varying_keys,
)
from runner.study.sweep_file import Sweep, SweepError, load_sweep, parse_overrides

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"
SHIPPED = sorted(SWEEPS.glob("*.yaml"))  # every shipped study: adding one needs no change here
# the trials of the studies whose size the paper (or the README's quickstart) fixes; a search sweep's are drawn
# over its grid points (lr_search: 6 points x 8 draws)
PAPER_TRIALS = {"quickstart": 4, "fig3": 12, "fig4": 40, "fig5": 12, "table2": 14, "table3": 12, "grid": 150,
                "lr_search": 48}


def expected_bundles(cfg: TrialConfig) -> list[dict[str, float]]:
    """The trial layout written out: trainable, Driver, then one bundle per worker."""
    r = cfg.resources
    worker = {"CPU": r.cpus_per_worker, **({"GPU": r.gpus_per_worker} if r.gpus_per_worker else {})}
    return [{"CPU": 0.1}, {"CPU": r.driver_cpus}] + [dict(worker) for _ in range(r.num_workers)]


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


SMALL = """
name: small
description: a test sweep
base:
  data: {dataset: synthetic, num_clients: 10, clients_per_round: 2}
  model: {arch: cnn, parameterization: fedpara}
  train: {rounds: 2}
grid:
  seed: [0, 1]
variants:
  - {model.parameterization: fedpara, model.gamma: [0.1, 0.9]}
  - {model.parameterization: original, model.gamma: null, resources.num_workers: 3}
"""


# ---- every shipped sweep file ---------------------------------------------------------------------

@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_sweep_file_loads_expands_and_matches_tune(path):
    sweep = load_sweep(path)
    assert sweep.name == path.stem
    assert "Figure" in sweep.description or "Table" in sweep.description
    trials = expand(sweep, results_root="/runs")  # a search sweep's grid points
    # a grid runs its points; a random search draws samples at each point; Optuna proposes samples in all
    search = sweep.search
    expected = len(trials) if search is None else search.samples * (len(trials) if search.algorithm == "random" else 1)
    assert trial_count(sweep, len(trials)) == expected
    assert len({t.trial_name for t in trials}) == len(trials)
    assert {t.logging.results_dir for t in trials} == {f"/runs/{sweep.name}"}
    assert {t.sweep for t in trials} == {sweep.name}

    # Tune's expansion of the search space gives exactly the same trials (a search's drawn values aside).
    space = param_space(sweep, results_root="/runs")
    drawn = list(sweep.search.space) if sweep.search else []
    from_tune = [trial_config_from_tune({k: v for k, v in config.items() if k not in drawn})
                 for _, config in generate_variants(space)]
    assert sorted(t.trial_name for t in from_tune) == sorted(t.trial_name for t in trials)


def test_the_papers_studies_are_shipped_with_their_sizes():
    shipped = {path.stem: path for path in SHIPPED}
    assert set(PAPER_TRIALS) <= set(shipped)  # a study may be added; none of these may go missing
    for name, count in PAPER_TRIALS.items():
        sweep = load_sweep(shipped[name])
        assert trial_count(sweep, len(expand(sweep))) == count, name


def test_fig4_is_datasets_x_splits_x_nine_gammas_plus_original():
    trials = expand(load_sweep(SWEEPS / "fig4.yaml"))
    cells = {}
    for t in trials:
        cells.setdefault((t.data.dataset, t.data.partition), []).append(t)
    assert set(cells) == {(d, p) for d in ("cifar10", "cifar100") for p in ("iid", "dirichlet")}
    for (dataset, partition), group in cells.items():
        fedpara = sorted(t.model.gamma for t in group if t.model.parameterization == "fedpara")
        assert fedpara == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
        [original] = [t for t in group if t.model.parameterization == "original"]
        assert original.model.gamma is None and original.model.ratio is None
        for t in group:  # the paper's settings (docs/method.md, "Settings")
            assert (t.data.num_clients, t.data.clients_per_round, t.train.rounds) == (
                (100, 16, 200) if dataset == "cifar10" else (50, 8, 400))
            assert t.train.local_epochs == (10 if partition == "iid" else 5)
            assert (t.model.arch, t.train.batch_size, t.train.lr, t.train.lr_decay) == ("vgg16", 64, 0.1, 0.992)
            assert t.data.alpha == 0.5 and t.algorithm.name == "fedavg"


def test_grid_crosses_gamma_with_alpha_dataset_and_architecture_at_the_papers_settings():
    trials = expand(load_sweep(SWEEPS / "grid.yaml"))
    cells: dict[tuple, list[TrialConfig]] = {}
    for t in trials:
        split = f"dir{t.data.alpha:g}" if t.data.partition == "dirichlet" else t.data.partition
        cells.setdefault((t.model.arch, t.data.dataset, split), []).append(t)
    images = {(a, d, s) for a in ("vgg16", "resnet18") for d in ("cifar10", "cinic10", "cifar100")
              for s in ("dir0.1", "dir0.5", "dir1", "iid")}
    assert set(cells) == images | {("lstm", "shakespeare", "natural")}
    for (arch, dataset, split), group in cells.items():
        knobs = sorted((t.model.parameterization, t.model.gamma or 0.0) for t in group)
        assert knobs == [("fedpara", g) for g in (0.1, 0.3, 0.5, 0.7, 0.9)] + [("original", 0.0)]
        for t in group:  # the paper's settings (docs/method.md), per dataset; Shakespeare as in table2.yaml
            assert t.algorithm.name == "fedavg" and t.data.client_fraction == 1.0
            if arch == "lstm":
                assert (t.data.num_clients, t.data.clients_per_round, t.train.rounds, t.train.local_epochs,
                        t.train.batch_size, t.train.lr, t.train.augment) == (715, 114, 200, 1, 10, 1.0, False)
                continue
            assert (t.data.num_clients, t.data.clients_per_round, t.train.rounds) == (
                (50, 8, 400) if dataset == "cifar100" else (100, 16, 200))
            assert t.train.local_epochs == (10 if split == "iid" else 5)
            assert (t.train.batch_size, t.train.lr, t.train.lr_decay, t.train.augment) == (64, 0.1, 0.992, True)
    # a command-line override reaches into the variants' split sets: every trial keeps its place
    short = expand(load_sweep(SWEEPS / "grid.yaml"), {"train.local_epochs": 1, "train.rounds": 2})
    assert len(short) == 150 and {(t.train.local_epochs, t.train.rounds) for t in short} == {(1, 2)}


def test_a_variant_may_cross_a_label_with_override_sets(tmp_path):
    text = SMALL.replace("  - {model.parameterization: fedpara, model.gamma: [0.1, 0.9]}",
                         "  - {model.parameterization: fedpara, model.gamma: [0.1, 0.9],\n"
                         "     split: [{data.partition: iid}, {data.partition: dirichlet, data.alpha: 0.1}]}")
    sweep = load_sweep(write(tmp_path, text))
    trials = expand(sweep)
    assert [(t.seed, t.model.gamma, t.data.partition, t.data.alpha) for t in trials if t.seed == 0] == [
        (0, 0.1, "iid", 0.5), (0, 0.1, "dirichlet", 0.1), (0, 0.9, "iid", 0.5), (0, 0.9, "dirichlet", 0.1),
        (0, None, "iid", 0.5)]
    from_tune = [trial_config_from_tune(c) for _, c in generate_variants(param_space(sweep))]
    assert sorted(t.trial_name for t in from_tune) == sorted(t.trial_name for t in trials)
    for bad, message in [
        ("split: [{data.partition: iid}, {data.partitoin: dirichlet}]",
         "variants[0]: split[1]: 'data.partitoin' is not a config field (did you mean 'data.partition'?)"),
        ("split: []", "variants[0]: split: the list is empty"),
        ("split: [{seed: 4}]", "variants[0]: seed is also a grid key"),
        ("split: [{model.gamma: 0.5}]", "variants[0]: model.gamma is set by both model.gamma and split"),
    ]:
        edited = text.replace("split: [{data.partition: iid}, {data.partition: dirichlet, data.alpha: 0.1}]", bad)
        with pytest.raises(SweepError) as error:
            load_sweep(write(tmp_path, edited, "bad.yaml"))
        assert message in str(error.value), str(error.value)


def test_paper_specific_settings_of_the_other_sweeps():
    fig3 = expand(load_sweep(SWEEPS / "fig3.yaml"))
    ratios = {(t.data.dataset, t.model.param_ratio) for t in fig3 if t.model.parameterization == "fedpara"}
    assert ratios == {("cifar10", 0.101), ("cifar100", 0.294), ("cinic10", 0.218)}  # whole-model shares
    assert sum(t.model.parameterization == "original" for t in fig3) == 6
    # (the sizes these build are checked against the paper's in tests/test_models_fidelity.py)

    table2 = expand(load_sweep(SWEEPS / "table2.yaml"))
    lstm = {(t.model.parameterization, t.model.param_ratio) for t in table2 if t.model.arch == "lstm"}
    assert lstm == {("fedpara", 0.19), ("lowrank", 0.16)}
    assert all(t.data.partition == "natural" for t in table2 if t.model.arch == "lstm")
    vgg = [t for t in table2 if t.model.arch == "vgg16"]
    assert len(vgg) == 12 and {(t.model.parameterization, t.model.param_ratio) for t in vgg} == {
        ("lowrank", 0.1025), ("fedpara", 0.101)}

    table3 = expand(load_sweep(SWEEPS / "table3.yaml"))
    methods = {(t.algorithm.name, t.upload.quantize_levels) for t in table3}
    assert methods == {("fedavg", None), ("fedprox", None), ("scaffold", None), ("feddyn", None), ("fedadam", None),
                       ("fedavg", 16)}  # the last is FedPAQ: FedAvg with a quantized upload
    assert {t.algorithm.settings.mu for t in table3 if t.algorithm.name == "fedprox"} == {0.01}
    assert {(t.data.dataset, t.model.parameterization) for t in table3} == {("cifar10", "fedpara")}
    for name, count in (("table3", 2), ("fig3", 6)):  # a target accuracy per split (and dataset), for every trial
        sweep = load_sweep(SWEEPS / f"{name}.yaml")
        assert len(sweep.targets) == count and all(0 < t.accuracy < 1 for t in sweep.targets)
        trials = expand(sweep)
        assert all(sum(t.applies(trial.flat()) for t in sweep.targets) == 1 for trial in trials)

    fig5 = expand(load_sweep(SWEEPS / "fig5.yaml"))
    scenarios: dict[tuple, set] = {}
    for t in fig5:
        scenarios.setdefault((t.data.dataset, t.data.partition, t.data.client_fraction), set()).add(
            (t.algorithm.name, t.model.parameterization))
    assert scenarios == {scenario: {("fedavg", "original"), ("fedper", "original"), ("local", "original"),
                                    ("pfedpara", "pfedpara")}
                         for scenario in [("femnist", "natural", 1.0),   # enough local data
                                          ("femnist", "natural", 0.1),   # scarce local data
                                          ("mnist", "pathological", 1.0)]}  # highly skewed labels
    assert all(t.personalized and t.model.arch == "fc2" and t.train.batch_size == 10 for t in fig5)
    assert all(t.data.clients_per_round == t.data.num_clients for t in fig5)  # no client sampling in Figure 5
    femnist = sorted((t.data.client_fraction, t.algorithm.name, t.flat()) for t in fig5 if t.data.dataset == "femnist")
    for (_, _, enough), (_, _, scarce) in zip(femnist[4:], femnist[:4]):  # scarce differs only in the fraction
        assert {k for k in enough if enough[k] != scarce[k]} == {"data.client_fraction"}

    quickstart = expand(load_sweep(SWEEPS / "quickstart.yaml"))
    cpus = [sum(b["CPU"] for b in expected_bundles(t)) for t in quickstart]
    assert cpus == pytest.approx([0.85] * 4)  # two fit at once on a 2-core laptop


# ---- validation errors name the file and the key -------------------------------------------------

@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(grids={"seed": [0]}), "grids: unknown key (did you mean 'grid'?) (valid: base, descr"),
    (lambda d: d["grid"].update(seed=0), "grid: seed: expected a list of values"),
    (lambda d: d["grid"].update(seed=[]), "grid: seed: the list is empty"),
    (lambda d: d["grid"].update({"model.gama": [0.1]}),
     "'model.gama' is not a config field (did you mean 'model.gamma'?)"),
    (lambda d: d["grid"].update(model=[{"gamma": 0.1}]), "'model' is not a config field (a section"),
    (lambda d: d["base"]["train"].update(epochs=3), "base: 'train.epochs' is not a config field"),
    (lambda d: d["variants"][0].update({"seed": 3}), "variants[0]: seed is also a grid key"),
    (lambda d: d["variants"][0].update({"model.gamma": []}), "variants[0]: model.gamma: the list is empty"),
    (lambda d: d["base"].update(logging={"results_dir": "/x"}), "logging.results_dir is set by the runner"),
    (lambda d: d["variants"][0].update({"model.gamma": [0.1, 1.5]}), "model.gamma: must be in [0, 1], got 1.5"),
    (lambda d: d["variants"].append({"model.parameterization": "fedpara", "model.gamma": 0.9}), "are identical"),
    (lambda d: d.update(name="../escape"), "name: expected a directory-safe string"),
    (lambda d: d.update(targets=[{"accuracy": 80}]),
     "targets[0].accuracy: must be a fraction in (0, 1) (0.8 for 80 %)"),
    (lambda d: d.update(targets=[{"acc": 0.8}]), "targets[0]: expected a mapping with an accuracy"),
    (lambda d: d.update(targets=[{"accuracy": 0.8, "data.partitio": "iid"}]), "targets[0].data.partitio: not a config"),
    (lambda d: d.update(targets=[{"accuracy": 0.8}, {"accuracy": 0.7, "data.dataset": "cifar10"}]),
     "targets[1]: applies to none of the sweep's trials (data.dataset='cifar10')"),
    (lambda d: d.update(targets=[{"accuracy": 0.8}, {"accuracy": 0.8}]), "targets[1]: listed twice"),
])
def test_bad_sweep_files_fail_with_the_path_and_the_key(tmp_path, edit, message):
    data = yaml.safe_load(SMALL)
    edit(data)
    path = write(tmp_path, yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SweepError) as error:
        load_sweep(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_a_bad_value_names_the_trial_it_is_in(tmp_path):
    path = write(tmp_path, SMALL.replace("model.gamma: [0.1, 0.9]", "model.gamma: [0.1, 0.9], train.lr: -1"))
    expected = r"train\.lr: must be > 0.*\(in the trial with seed=0, model\.parameterization="
    with pytest.raises(SweepError, match=expected):
        load_sweep(path)


def test_invalid_yaml_and_missing_files(tmp_path):
    with pytest.raises(SweepError, match="not valid YAML"):
        load_sweep(write(tmp_path, "name: [unclosed"))
    with pytest.raises(SweepError, match="no such sweep file"):
        load_sweep(tmp_path / "absent.yaml")


# ---- expansion, merging, overrides ---------------------------------------------------------------

def test_expand_is_grid_major_and_variants_cross_their_lists(tmp_path):
    sweep = load_sweep(write(tmp_path, SMALL))
    assert isinstance(sweep, Sweep) and sweep.grid == {"seed": [0, 1]} and len(sweep.variants) == 2
    trials = expand(sweep)
    assert [(t.seed, t.model.parameterization, t.model.gamma, t.resources.num_workers) for t in trials] == [
        (0, "fedpara", 0.1, 2), (0, "fedpara", 0.9, 2), (0, "original", None, 3),
        (1, "fedpara", 0.1, 2), (1, "fedpara", 0.9, 2), (1, "original", None, 3)]
    assert expand(sweep) == trials  # deterministic
    assert varying_keys(trials) == ["model.parameterization", "model.gamma", "resources.num_workers", "seed"]


def test_merge_trial_order_is_base_then_grid_then_variant():
    base = {"model": {"gamma": 0.1, "arch": "cnn"}, "seed": 5}
    merged = merge_trial(base, {"base": {"ignored": 1}, "model.gamma": 0.2, "seed": 1,
                                "variant": {"model.gamma": 0.3}})
    assert merged == {"model": {"gamma": 0.3, "arch": "cnn"}, "seed": 1}
    assert base == {"model": {"gamma": 0.1, "arch": "cnn"}, "seed": 5}  # not mutated


def test_overrides_parse_as_yaml_and_win_over_grid_and_variants():
    assert parse_overrides(["train.rounds=2", "model.gamma=null", "train.lr=1e-2", "train.augment=false",
                            "data.dataset=cifar10"]) == {
        "train.rounds": 2, "model.gamma": None, "train.lr": 0.01, "train.augment": False, "data.dataset": "cifar10"}
    with pytest.raises(SweepError, match="expected key=value"):
        parse_overrides(["train.rounds"])

    fig4 = load_sweep(SWEEPS / "fig4.yaml")
    short = expand(fig4, {"train.rounds": 2, "data.num_clients": 20, "data.clients_per_round": 4})
    assert len(short) == 40  # the CIFAR-100 variants' 400 rounds are overridden too
    assert {(t.train.rounds, t.data.num_clients, t.data.clients_per_round) for t in short} == {(2, 20, 4)}
    with pytest.raises(SweepError, match=r"command-line override.*'train.round' is not a config field"):
        expand(fig4, {"train.round": 2})
    one_gamma = expand(fig4, {"model.gamma": 0.5})  # the gamma axis collapses: one FedPara trial a cell
    assert len(one_gamma) == 8 and {t.model.gamma for t in one_gamma} == {0.5}


def test_trial_resources_follow_each_trials_own_config(tmp_path):
    space = param_space(load_sweep(write(tmp_path, SMALL)), results_root=tmp_path)
    configs = [config for _, config in generate_variants(space)]
    factories = [tune_sweep.trial_resources(config) for config in configs]
    assert {f.strategy for f in factories} == {"PACK"}
    workers = sorted({len(f.bundles) - 2 for f in factories})
    assert workers == [2, 3]  # the original-model variant asks for 3 workers
    for config, factory in zip(configs, factories):
        cfg = trial_config_from_tune(config)
        assert factory.bundles == TrialLayout.of(cfg.resources).bundles() == expected_bundles(cfg)


# ---- the CLI ---------------------------------------------------------------------------------------

@pytest.fixture
def no_ray(monkeypatch):
    import ray

    def refuse(*args, **kwargs):
        raise AssertionError("ray.init must not be called")

    monkeypatch.setattr(ray, "init", refuse)


def test_dry_run_prints_the_grid_and_resources_without_ray(tmp_path, capsys, no_ray):
    assert sweep_cli.main(["sweeps/quickstart.yaml", "--dry-run", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    trials = expand(load_sweep(SWEEPS / "quickstart.yaml"), results_root=tmp_path.resolve())
    rows = [line for line in out.splitlines() if line[:1].isdigit()]
    assert len(rows) == 4
    for row, trial in zip(rows, trials):
        assert trial.trial_name in row and "0.1C | 0.25C | 1x(0.5C)" in row and row.split()[-2:] == ["0.85", "0"]
    assert "parameterization" in out and "gamma" in out
    assert "total if every trial ran at once: 3.4 CPU, 0 GPU" in out
    assert f"results: {tmp_path.resolve() / 'quickstart'}" in out
    assert "synthetic (~/fedpara-data): ok" in out


def test_dry_run_of_a_gpu_sweep_with_overrides_and_missing_data(capsys, no_ray, monkeypatch):
    import partitions

    def missing(name, root, download=False):
        if not name.startswith("synthetic"):
            raise partitions.DatasetNotFoundError(f"{name}: not under {root}")

    monkeypatch.setattr(partitions, "check_available", missing)
    g5_xlarge = Capacity("this machine", (NodeShape("as Ray detects it", 4, 1),))  # a GPU machine, not this one
    monkeypatch.setattr(capacity, "this_machine", lambda: g5_xlarge)
    assert sweep_cli.main(["sweeps/fig4.yaml", "train.rounds=3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "fig4 (sweeps/fig4.yaml): 40 trials" in out
    assert sum(line[:1].isdigit() for line in out.splitlines()) == 40
    assert "0.1C | 0.5C | 4x(0.75C+0.25G)" in out
    assert "total if every trial ran at once: 144 CPU, 40 GPU" in out
    assert f"cifar100 (~/fedpara-data): MISSING - cifar100: not under {Path('~/fedpara-data').expanduser()}" in out
    assert " rounds " not in out.splitlines()[3]  # overridden everywhere, so it no longer varies
    assert "capacity: every trial fits on this machine: 1 x (4 CPU, 1 GPU)" in out


def test_cli_fails_before_ray_on_bad_input_or_missing_data(tmp_path, capsys, no_ray, monkeypatch):
    assert sweep_cli.main([str(write(tmp_path, SMALL.replace("seed: [0, 1]", "seed: 0"))), "--dry-run"]) == 2
    assert "grid: seed: expected a list" in capsys.readouterr().err
    assert sweep_cli.main(["sweeps/quickstart.yaml", "model.gama=0.3"]) == 2
    assert "'model.gama' is not a config field" in capsys.readouterr().err

    import partitions

    checked = []

    def missing(name, root, download=False):
        checked.append((name, root))
        raise partitions.DatasetNotFoundError(f"{name} is not under {root}; get it with ...")

    monkeypatch.setattr(partitions, "check_available", missing)
    assert sweep_cli.main(["sweeps/table3.yaml"]) == 2
    home_data = str(Path("~/fedpara-data").expanduser())
    assert checked == [("cifar10", home_data)]  # one check per distinct (dataset, root)
    assert f"cifar10 is not under {home_data}" in capsys.readouterr().err


class RecordingTuner:
    """Stands in for tune.Tuner: records how the CLI builds, restores and fits the experiment."""

    calls: ClassVar[list[tuple[str, dict]]] = []
    restorable = False

    def __init__(self, trainable, **kwargs):
        RecordingTuner.calls.append(("new", {"trainable": trainable, **kwargs}))

    @classmethod
    def can_restore(cls, path):
        cls.calls.append(("can_restore", {"path": path}))
        return cls.restorable

    @classmethod
    def restore(cls, path, **kwargs):
        cls.calls.append(("restore", {"path": path, **kwargs}))
        return cls.__new__(cls)

    def fit(self):
        RecordingTuner.calls.append(("fit", {}))
        return []


@pytest.mark.parametrize("restorable", [False, True])
def test_run_builds_one_tuner_per_sweep_or_restores_it(tmp_path, capsys, monkeypatch, restorable):
    import ray
    from ray import tune

    inits = []
    monkeypatch.setattr(ray, "init", lambda **kwargs: inits.append(kwargs))
    monkeypatch.setattr(tune_sweep, "connected_cluster", lambda address: Capacity("c", (NodeShape("a", 4, 0),)))
    monkeypatch.setattr(tune, "Tuner", RecordingTuner)
    RecordingTuner.calls, RecordingTuner.restorable = [], restorable
    argv = ["sweeps/quickstart.yaml", "--results", str(tmp_path), "--max-concurrent", "2", "--no-plot",
            "--address", "auto", *(["--resume"] if restorable else [])]
    assert sweep_cli.main(argv) == 130  # the recording Tuner runs nothing: the sweep says it stopped early
    experiment = str(tmp_path.resolve() / "quickstart" / "tune")
    assert inits == [{"address": "auto"}]
    kinds = [kind for kind, _ in RecordingTuner.calls]
    if restorable:
        assert kinds == ["can_restore", "restore", "fit"]
        restore = RecordingTuner.calls[1][1]
        assert restore["path"] == experiment and restore["resume_unfinished"] and restore["resume_errored"]
        assert restore["trainable"].__name__ == "tune_trainable"  # with the sweep's context (tune.with_parameters)
    else:
        assert kinds == ["new", "fit"]
        built = RecordingTuner.calls[0][1]
        assert built["trainable"].__name__ == "tune_trainable"  # with the sweep's context (tune.with_parameters)
        assert callable(built["trainable"]._resources)  # per-trial placement groups
        assert built["tune_config"].max_concurrent_trials == 2
        assert built["tune_config"].trial_name_creator is tune_sweep.tune_trial_name
        first = next(config for _, config in generate_variants(built["param_space"]))
        name = tune_sweep.tune_trial_name(types.SimpleNamespace(config=first))
        assert name == trial_config_from_tune(first).trial_name
        run = built["run_config"]
        assert (run.name, run.storage_path) == ("tune", str(tmp_path.resolve() / "quickstart"))
        assert isinstance(run.progress_reporter, SweepProgress) and run.verbose == 1  # not Tune's full table
        space = built["param_space"]
        assert space["base"]["logging"]["results_dir"] == str(tmp_path.resolve() / "quickstart")
        assert len(list(generate_variants(space))) == 4
    captured = capsys.readouterr()
    out = captured.out
    assert "stopped before the end:\n  0 of 4 trials have rows, 0 finished\n" in captured.err
    assert captured.err.rstrip().endswith(f"Resume with: python -m runner.sweep sweeps/quickstart.yaml --results "
                                          f"{tmp_path} --resume")
    assert f"wandb sync {tmp_path.resolve() / 'quickstart' / 'wandb'}/offline-run-*" in out
    assert f"note: {tmp_path.resolve()} is a path on this node" in out  # --address with results on local disk


def test_a_shipped_study_is_found_by_name_from_any_directory(tmp_path, monkeypatch, capsys, no_ray):
    from runner.study.sweep_file import find_sweep_file

    monkeypatch.chdir(tmp_path)  # e.g. a Ray job's working directory, or an installed package's user
    for given in ("fig4", "fig4.yaml", "sweeps/fig4.yaml", Path("sweeps/fig4.yaml")):
        assert find_sweep_file(given) == SWEEPS / "fig4.yaml"
    assert load_sweep("table3").name == "table3"
    mine = write(tmp_path, SMALL.replace("name: small", "name: fig4"), "fig4.yaml")
    assert find_sweep_file("fig4.yaml").resolve() == mine  # a file that exists as given wins
    shipped = re.escape(", ".join(path.stem for path in SHIPPED))  # all of them, in order
    with pytest.raises(SweepError, match=rf"fig9: no such sweep file .*shipped studies: {shipped}\)$"):
        find_sweep_file("fig9")
    with pytest.raises(SweepError, match="no such sweep file"):
        find_sweep_file("other/fig4.yaml")  # a path to elsewhere is not a shipped study
    assert sweep_cli.main(["--dry-run", "train.rounds=2"]) == 0  # the default, sweeps/quickstart.yaml
    assert f"sweep quickstart ({SWEEPS / 'quickstart.yaml'}): 4 trials" in capsys.readouterr().out


def test_an_override_can_mend_a_file_and_trials_are_checked_once_after_the_overrides(tmp_path, monkeypatch):
    from runner.study import sweep_expand

    path = write(tmp_path, "name: mend\nbase:\n  data: {dataset: synthetic}\n  train: {lr: -1}\n"
                           "grid:\n  model.gamma: [0.1, 0.5]\n")
    with pytest.raises(SweepError, match=r"train\.lr"):
        load_sweep(path)  # the file alone is refused, naming the field
    with pytest.raises(SweepError, match=r"train\.lr"):
        sweep_expand.load_with_overrides(path, [], str(tmp_path / "results"))
    calls = []
    real_expand = sweep_expand.expand
    monkeypatch.setattr(sweep_expand, "expand", lambda *a, **k: calls.append(1) or real_expand(*a, **k))
    loaded = sweep_expand.load_with_overrides(path, ["train.lr=0.2"], str(tmp_path / "results"))
    assert [t.train.lr for t in loaded.trials] == [0.2, 0.2] and len(calls) == 1
    assert loaded.results_root == str((tmp_path / "results").resolve())
