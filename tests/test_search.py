"""Search sweeps: the ``search:`` section checked at the edge, and the grid points Tune draws over."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.tune.search.variant_generator import generate_variants

from runner.study.search import Asha
from runner.study.sweep_file import (
    SweepError,
    apply_overrides,
    expand,
    load_sweep,
    param_space,
    trial_config_from_tune,
    trial_count,
)

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
TINY = """
name: tiny_search
description: Figure 4's lr search in miniature (synthetic data, FC-2)
base:
  data: {dataset: synthetic, num_clients: 10, clients_per_round: 2}
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
    (lambda d: d["search"].update(samples=0), "search.samples: expected an int >= 1, got 0"),
    (lambda d: d["search"].update(sample=3), "search: unknown key 'sample'"),
    (lambda d: d["search"].update(metric="accuracy"), "search.metric: unknown value 'accuracy'"),
    (lambda d: d["search"].update(mode="up"), "search.mode: expected max or min"),
    (lambda d: d["search"].update(space={}), "search.space: expected a mapping of config fields to domains"),
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
    (lambda d: d["search"].update(scheduler={"hyperband": {}}), "search.scheduler: expected {asha: "),
    (lambda d: d["search"].update(scheduler={"asha": {"grace": 2}}), "search.scheduler.asha: unknown key 'grace'"),
    (lambda d: d["search"].update(scheduler={"asha": {"grace_period": 5, "max_t": 2}}),
     "search.scheduler.asha.max_t: must be >= grace_period (5), got 2"),
    (lambda d: d["search"].update(scheduler={"asha": {"reduction_factor": 1}}),
     "search.scheduler.asha.reduction_factor: must be a number > 1"),
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


def test_a_search_sweep_lists_its_grid_points_and_tune_draws_the_rest(tmp_path):
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
