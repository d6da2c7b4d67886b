"""Search sweeps: the ``search:`` section checked at the edge, Tune's searcher and ASHA built from it, ASHA
judging each grid point alone on evaluated rounds, and a tiny random search that runs, stops, resumes and plots.
"""

from __future__ import annotations

import json
import math
import os
import signal
import types
from pathlib import Path

import pandas as pd
import pytest
import yaml
from ray.tune import Callback
from ray.tune.search.variant_generator import generate_variants

from runner import plot as plot_cli
from runner import sweep as sweep_cli
from runner.study.progress import STOPPED_DIR, sweep_progress
from runner.study.results import load_rounds
from runner.study.search import Asha
from runner.study.sweep_expand import apply_overrides, expand, param_space, trial_config_from_tune, trial_count
from runner.study.sweep_file import SweepError, load_sweep
from runner.study.sweep_record import SweepRecord, read_record
from runner.study.trial import Report
from runner.study.tune_search import AshaPerPoint, drawn_trials, tune_search

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"
TINY = """
name: tiny_search
description: Figure 4's lr search in miniature (synthetic data, FC-2)
base:
  data: {dataset: synthetic, num_clients: 10, clients_per_round: 2, validation_fraction: 0.2}
  model: {arch: fc2, parameterization: fedpara, gamma: 0.5}
  train: {rounds: 3, local_epochs: 1, batch_size: 32, lr: 0.1, eval_every: 2}
  resources: {num_workers: 1, cpus_per_worker: 0.5, driver_cpus: 0.25}
  logging: {checkpoint_every: 1, wandb: disabled}
search:
  algorithm: random
  samples: 3
  seed: 1
  space: {train.lr: {loguniform: [0.01, 0.3]}}
  scheduler: {asha: {grace_period: 1, reduction_factor: 2}}
"""


def write(tmp_path: Path, text: str, name: str = "tiny_search.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def edited(change) -> str:
    data = yaml.safe_load(TINY)
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


# ---- the section, checked at the edge ------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    (lambda d: d["search"].update(algorithm="bayes"), "search.algorithm: unknown value 'bayes' (choose from random"),
    (lambda d: d["search"].update(samples=0),
     "search.samples: must be >= 1 (random: draws per grid point; optuna: trials in all), got 0"),
    (lambda d: d["search"].update(sample=3), "search.sample: unknown key (did you mean 'samples'?)"),
    (lambda d: d["search"].update(metric="accuracy"), "search.metric: unknown value 'accuracy'"),
    (lambda d: d["search"].update(metric="test_accuracy"),
     "search.metric: test_accuracy would tune on the test set, whose accuracy the study reports; use val_accuracy"),
    (lambda d: d["base"]["data"].update(validation_fraction=0),
     "search.metric: val_accuracy needs validation data, and data.validation_fraction is 0"),
    (lambda d: d["base"]["data"].update(validation_fraction=1),
     "data.validation_fraction: must be in [0, 1) (the fraction of each client's training samples held out), got 1"),
    (lambda d: d["search"].update(mode="up"), "search.mode: unknown value 'up' (choose from max, min)"),
    (lambda d: d["search"].update(space={}),
     "search.space: must not be empty (float config fields to domains, e.g. train.lr"),
    (lambda d: d["search"].update(space={"train.lr": {"normal": [0, 1]}}),
     "search.space.train.lr: unknown domain 'normal' (choose from uniform, loguniform)"),
    (lambda d: d["search"].update(space={"train.lr": {"loguniform": [0, 0.3]}}),
     "search.space.train.lr: loguniform: low must be > 0"),
    (lambda d: d["search"].update(space={"train.lr": {"uniform": [0.3, 0.1]}}),
     "search.space.train.lr: uniform: low must be below high"),
    (lambda d: d["search"].update(space={"train.local_epochs": {"uniform": [1, 5]}}),
     "search.space.train.local_epochs: only float fields are searched"),
    (lambda d: d["search"].update(space={"train.lrr": {"uniform": [0.1, 0.2]}}),
     "search.space.train.lrr: not a config field"),
    (lambda d: d["search"].update(space={"model.gamma": {"uniform": [0.5, 1.5]}}),
     "search.space: model.gamma: must be in [0, 1], got 1.5 (at the high end of model.gamma ~ uniform(0.5, 1.5)"),
    (lambda d: d["search"].update(scheduler={"hyperband": {}}),
     "search.scheduler.hyperband: unknown key (valid: asha)"),
    (lambda d: d["search"].update(scheduler={"asha": {"grace": 2}}),
     "search.scheduler.asha.grace: unknown key (valid: grace_period, max_t, reduction_factor)"),
    (lambda d: d["search"].update(scheduler={"asha": {"grace_period": 5, "max_t": 2}}),
     "search.scheduler.asha.max_t: must be >= grace_period (5), got 2"),
    (lambda d: d["search"].update(scheduler={"asha": {"reduction_factor": 1}}),
     "search.scheduler.asha.reduction_factor: must be > 1, got 1"),
    (lambda d: d.update(grid={"train.lr": [0.1, 0.2]}), "search.space.train.lr: also a grid key"),
    (lambda d: d.update(variants=[{"train.lr": 0.1}]), "search.space.train.lr: also set by variants[0]"),
    (lambda d: (d["search"].update(algorithm="optuna"), d.update(grid={"seed": [0, 1]})),
     "search.algorithm: optuna proposes every trial itself and cannot cross a grid (2 grid points here)"),
])
def test_a_bad_search_section_names_the_key(tmp_path, change, message):
    path = write(tmp_path, edited(change))
    with pytest.raises(SweepError) as error:
        load_sweep(path)
    assert str(path) in str(error.value) and message in str(error.value), str(error.value)


def test_a_search_sweep_lists_its_grid_points_and_tune_draws_the_rest():
    sweep = load_sweep(SWEEPS / "lr_search.yaml")
    points = expand(sweep)
    assert len(points) == 6 and trial_count(sweep, len(points)) == 48
    assert {t.train.lr for t in points} == {0.1}  # at the base value until drawn
    assert sweep.search.asha == Asha(grace_period=20, max_t=200, reduction_factor=3.0)
    assert sweep.search.asha.rungs(200) == [20, 60, 180]
    space = param_space(sweep)
    configs = [config for _, config in generate_variants(space)]
    trials = [trial_config_from_tune(config) for config in configs]
    assert len(trials) == 6 and all(0.01 <= t.train.lr <= 0.3 for t in trials)
    assert len({t.train.lr for t in trials}) == 6 and len({t.trial_name for t in trials}) == 6
    # a drawn value is part of a trial's name: two draws never share a results directory
    twin = trial_config_from_tune({**configs[0], "train.lr": configs[0]["train.lr"] * 1.5})
    assert twin.trial_name != trials[0].trial_name
    # an override fixes a drawn setting; with none left to draw, the sweep is a plain grid
    fixed = apply_overrides(sweep, {"train.lr": 0.05})
    assert fixed.search is None and {t.train.lr for t in expand(fixed)} == {0.05}


def test_tune_gets_a_seeded_searcher_samples_and_asha_per_grid_point(tmp_path):
    from ray.tune.search import BasicVariantGenerator

    sweep = load_sweep(SWEEPS / "lr_search.yaml")
    options = tune_search(sweep, expand(sweep), 2)
    assert options["search_alg"].max_concurrent == 2  # Tune takes a generator's own limit, not the TuneConfig's
    assert (options["num_samples"], options["metric"], options["mode"]) == (8, "val_accuracy", "max")
    assert {t.data.validation_fraction for t in expand(sweep)} == {0.1}  # tuned on held-out training samples
    assert isinstance(options["search_alg"], BasicVariantGenerator)
    asha = options["scheduler"]
    assert isinstance(asha, AshaPerPoint) and (asha.grace_period, asha.max_t, asha.reduction_factor) == (20, 200, 3)
    assert tune_search(load_sweep(SWEEPS / "fig4.yaml"), [], 3) == {"max_concurrent_trials": 3}  # a grid sweep

    optuna_file = write(tmp_path, edited(lambda d: (d["search"].update(algorithm="optuna"),
                                                    d["search"].pop("scheduler"))))
    optuna_sweep = load_sweep(optuna_file)
    from ray.tune.search.optuna import OptunaSearch

    options = tune_search(optuna_sweep, expand(optuna_sweep))
    assert isinstance(options["search_alg"], OptunaSearch) and "scheduler" not in options
    # Optuna reads the space from the param space: constants and one domain, no grid_search
    space = param_space(optuna_sweep)
    searcher = options["search_alg"]
    assert searcher.set_search_properties("test_accuracy", "max", space)
    suggested = searcher.suggest("trial-1")
    assert list(suggested) == ["train.lr"] and 0.01 <= suggested["train.lr"] <= 0.3  # Tune adds the constants


def test_dry_run_says_what_a_search_sweep_will_do(capsys, monkeypatch):
    import partitions
    from runner.study import capacity

    monkeypatch.setattr(partitions, "check_available", lambda *args, **kwargs: None)
    gpu_nodes = capacity.Capacity("the cluster at test", (capacity.NodeShape("gpu", 8, 2, None),))
    monkeypatch.setattr(capacity, "this_machine", lambda: gpu_nodes)  # the sweep's trials ask for quarter GPUs
    assert sweep_cli.main(["sweeps/lr_search.yaml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "lr_search (sweeps/lr_search.yaml): 48 trials drawn over 6 grid points" in out
    assert "search: random, 8 draws per grid point x 6 grid points = 48 trials (seed 0)" in out
    assert "train.lr ~ loguniform(0.01, 0.3)" in out
    assert "grace period 20 rounds, max_t 200, reduction factor 3 (rungs at rounds 20, 60, 180)" in out
    assert sum(line[:1].isdigit() for line in out.splitlines()) == 6  # one row per grid point
    assert "cifar10-dir0.5-val0.1-vgg16-fedpara-g0.1-fedavg-s0  " in out  # named without the digest
    assert "total if every trial ran at once: 172.8 CPU, 48 GPU" in out
    # the seed's draws, 8 per grid point, as the sweep will run them
    draws = [line for line in out.splitlines() if line.startswith("  ") and ": train.lr " in line]
    assert len(draws) == 6 and draws[0].startswith("  1  cifar10-dir0.5-val0.1-vgg16-fedpara-g0.1-fedavg-s0: train.lr ")
    lrs = [float(v) for line in draws for v in line.split("train.lr ")[1].split(", ")]
    assert len(lrs) == 48 and all(0.01 <= lr <= 0.3 for lr in lrs)
    planned = drawn_trials(load_sweep(SWEEPS / "lr_search.yaml"), "results")
    assert planned is not None and len({t.trial_name for t in planned}) == 48
    assert sorted(lrs) == sorted(float(f"{t.train.lr:.4g}") for t in planned)


# ---- ASHA on evaluated rounds, one grid point at a time ------------------------------------------

def test_report_hands_tune_evaluated_rounds_only():
    reported = []
    sink = Report(reported.append)
    row = {"round": 1, "test_accuracy": math.nan, "test_loss": math.nan, "val_accuracy": math.nan,
           "val_loss": math.nan, "train_loss": 2.0, "cumulative_bytes": 10, "round_seconds": 1.0}
    sink.write(row)
    sink.write({**row, "round": 2, "test_accuracy": 0.4, "test_loss": 1.5, "val_accuracy": 0.38, "val_loss": 1.6})
    assert [(r["round"], r["test_accuracy"], r["val_accuracy"]) for r in reported] == [(2, 0.4, 0.38)]


def test_asha_judges_each_grid_point_alone_and_records_early_stops(tmp_path):
    sweep = load_sweep(write(tmp_path, edited(lambda d: d.update(grid={"model.gamma": [0.1, 0.9]}))))
    space = param_space(sweep, results_root=tmp_path)
    points = [config for _, config in generate_variants(space)]
    by_gamma = {config["model.gamma"]: config for config in points}

    def trial(gamma: float, lr: float) -> types.SimpleNamespace:
        return types.SimpleNamespace(trial_id=f"g{gamma}-lr{lr}", config={**by_gamma[gamma], "train.lr": lr})

    asha = AshaPerPoint(grace_period=1, max_t=3, reduction_factor=2, searched=["train.lr"])
    assert asha.set_search_properties("test_accuracy", "max")
    good, bad, small = trial(0.9, 0.1), trial(0.9, 0.02), trial(0.1, 0.05)
    for t in (good, bad, small):
        asha.on_trial_add(None, t)
    assert asha.on_trial_result(None, good, {"round": 2, "test_accuracy": 0.8}) == "CONTINUE"
    assert asha.on_trial_result(None, bad, {"round": 2, "test_accuracy": 0.5}) == "STOP"
    # the smaller model is worse than both, but it is only compared with the draws of its own gamma
    assert asha.on_trial_result(None, small, {"round": 2, "test_accuracy": 0.3}) == "CONTINUE"
    assert len(asha._points) == 2
    stopped = sorted((tmp_path / "tiny_search" / STOPPED_DIR).iterdir())
    bad_name = trial_config_from_tune(bad.config).trial_name
    assert [p.name for p in stopped] == [f"{bad_name}.json"]
    assert json.loads(stopped[0].read_text()) == {"trial": bad_name, "round": 2, "rounds": 3,
                                                  "metric": "test_accuracy", "value": 0.5, "by": "ASHA"}
    # at its last round a trial ends by itself (after its last checkpoint): not stopped, nothing recorded
    assert asha.on_trial_result(None, good, {"round": 3, "test_accuracy": 0.9}) == "CONTINUE"
    assert len(list((tmp_path / "tiny_search" / STOPPED_DIR).iterdir())) == 1


# ---- end to end: a tiny random search runs, is stopped, resumes and plots ------------------------

class InterruptAfterFirstResult(Callback):
    """Ctrl-C, in process: once one evaluated round came back, the signal Tune treats as an interrupt (SIGUSR1,
    which Tune always handles; SIGINT is pytest's). Tune saves the experiment's state and returns."""

    armed = True  # a class attribute: the restored experiment unpickles its own copy of the callback

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if InterruptAfterFirstResult.armed:
            InterruptAfterFirstResult.armed = False
            os.kill(os.getpid(), signal.SIGUSR1)


@pytest.mark.usefixtures("ray_session")
def test_a_random_search_sweep_is_interrupted_resumes_the_same_draws_and_plots(tmp_path, monkeypatch, capsys):
    import ray
    from ray import tune

    monkeypatch.setattr(ray, "init", lambda *args, **kwargs: None)  # the session's Ray

    class InterruptingRunConfig(tune.RunConfig):
        def __init__(self, **kwargs):
            super().__init__(**kwargs, callbacks=[InterruptAfterFirstResult()])

    monkeypatch.setattr(tune, "RunConfig", InterruptingRunConfig)
    path = write(tmp_path, edited(lambda d: d["search"].update(samples=2)))  # two draws: one resumed, one new
    argv = [str(path), "--results", str(tmp_path / "results"), "--max-concurrent", "1", "--no-plot"]
    results = tmp_path / "results" / "tiny_search"
    # the seed's draws, known before the sweep runs; the run below must be exactly these
    draws = drawn_trials(load_sweep(path), str(tmp_path / "results"))
    assert draws is not None and len({t.train.lr for t in draws}) == 2

    sweep_cli.main(argv)  # interrupted after the first evaluated round of the first trial
    first = load_rounds(results)
    assert set(first["trial"]) == {draws[0].trial_name}  # one at a time (--max-concurrent 1), in Tune's order
    reached = first["round"].max()  # 2, or 3 where round 3 ran before Tune stopped the trial
    assert list(first["round"]) == list(range(1, reached + 1)) and reached >= 2
    record = read_record(results)  # sweep.json names the draws: a resume compares them like a grid's trials
    assert record is not None and list(record.trials) == [t.trial_name for t in draws]
    assert record.search == {"algorithm": "random", "seed": 1, "samples": 2, "trials": 2, "drawn": ["train.lr"]}
    lines = sweep_progress(results).lines()
    assert lines[:2] == [f"1 of 2 trials drawn by the random search have rows, {int(reached == 3)} finished",
                         f"1 of 2 trials have no rows yet: {draws[1].trial_name}"]
    assert lines[2:] == ([f"1 unfinished (last round so far): {draws[0].trial_name} (2/3)"] if reached < 3 else [])

    assert sweep_cli.main([*argv, "--resume"]) == 0
    rows = load_rounds(results)
    assert sorted(set(rows["trial"])) == sorted(t.trial_name for t in draws)  # the same 2 draws, none twice
    stopped = {p.stem: json.loads(p.read_text()) for p in (results / STOPPED_DIR).glob("*.json")}
    for draw in draws:
        mine = rows[rows["trial"] == draw.trial_name]
        assert set(mine["train.lr"]) == {draw.train.lr}
        last = 2 if draw.trial_name in stopped else 3  # ASHA stops at an evaluated round (2), before the last
        assert list(mine["round"]) == list(range(1, last + 1))  # no round twice: the first resumed at round 3
    assert draws[0].trial_name not in stopped  # ASHA had nothing to compare it with at its rung
    assert sweep_progress(results).lines()[0].startswith("all 2 trials have rows")

    # run again without --resume: a fresh Tune run draws the same trials, each finds itself done or stopped
    before = load_rounds(results)
    assert sweep_cli.main(argv) == 0
    pd.testing.assert_frame_equal(load_rounds(results), before)

    capsys.readouterr()
    assert plot_cli.main([str(results)]) == 0
    assert "all 2 trials have rows" in capsys.readouterr().out


def test_progress_counts_an_optuna_search_and_names_a_grids_missing_and_foreign_trials(tmp_path):
    def rows(*trials: tuple[str, int, int]) -> pd.DataFrame:
        return pd.DataFrame([{"trial": name, "round": r, "train.rounds": of}
                             for name, last, of in trials for r in range(1, last + 1)])

    optuna = SweepRecord("s", "s.yaml", {}, None, 0, {"point-0": {}}, search={"algorithm": "optuna", "trials": 5})
    optuna.write(tmp_path / "optuna")
    (tmp_path / "optuna" / STOPPED_DIR).mkdir()
    (tmp_path / "optuna" / STOPPED_DIR / "b.json").write_text("{}")
    progress = sweep_progress(tmp_path / "optuna", rows(("a", 4, 4), ("b", 2, 4), ("c", 3, 4)))
    assert progress.lines() == ["3 of 5 trials drawn by the optuna search have rows, 1 finished",
                                "2 of 5 trials have no rows yet (proposed as the search goes)",
                                "1 unfinished (last round so far): c (3/4)",
                                "1 stopped early by ASHA (at round): b (2/4)"]

    grid = SweepRecord("g", "g.yaml", {}, None, 0, {name: {} for name in ("a", "b", "c")})
    grid.write(tmp_path / "grid")
    progress = sweep_progress(tmp_path / "grid", rows(("a", 4, 4), ("old", 4, 4)))
    assert progress.lines() == ["1 of 3 trials have rows, 1 finished", "2 of 3 trials have no rows yet: b, c",
                                "1 trials with rows are not in sweep.json (from an earlier version of the sweep or "
                                "other overrides; the figures include them): old"]
    assert sweep_progress(tmp_path / "none", rows(("a", 1, 4))).lines() == [
        f"1 trials have rows ({tmp_path / 'none'}/sweep.json is missing, so which trials have none yet is unknown: "
        "python -m runner.sweep writes it)", "1 unfinished (last round so far): a (1/4)"]


def test_the_planned_draws_are_tunes_own_over_a_grid():
    """drawn_trials replays Tune's seeded generator; over lr_search's 6 grid points x 8 samples it must give the
    trials BasicVariantGenerator hands Tune, in the same order (the interrupted run above checks one point)."""
    from ray.tune.experiment import Experiment
    from ray.tune.search import BasicVariantGenerator

    sweep = load_sweep(SWEEPS / "lr_search.yaml")
    generator = BasicVariantGenerator(random_state=sweep.search.seed)
    generator.add_configurations([Experiment("draws", lambda config: None, num_samples=sweep.search.samples,
                                             config=param_space(sweep, results_root="/runs"))])
    from_tune = []
    while (trial := generator.next_trial()) is not None:
        from_tune.append(trial_config_from_tune(trial.config).trial_name)
    planned = drawn_trials(sweep, "/runs")
    assert planned is not None and len(from_tune) == 48
    assert [t.trial_name for t in planned] == from_tune
