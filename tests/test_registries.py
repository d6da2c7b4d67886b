"""A new architecture or dataset is its own module and a test: registered in ``models.registry`` and
``partitions.registry`` (monkeypatched here, as a new module's one line there would), the config accepts it,
the factory and the budget solver build it, the report lists it, the check before a trial and the loader
find it, and a worker trains on it with the augmentation its record asks for; no other file knows its name."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from models import ARCHITECTURES, Architecture, Parameterization, build_model, count_parameters
from models.budget import solve_for
from models.parameterization import ORIGINAL
from models.report import main as report_main
from models.report import report_rows
from partitions import DATASETS, DatasetInfo, DatasetNotFoundError, FederatedDataset, check_available, load_dataset
from runner.config import ConfigError, TrialConfig
from runner.engine.model import initial_model, trial_model
from runner.engine.wire import to_wire

TOY_SAMPLES, TOY_TEST, TOY_CLASSES, TOY_SHAPE = 160, 40, 4, (1, 8, 8)


class TinyMLP(nn.Module):
    """flatten → factorized linear 32 → ReLU → original head: the smallest model with a factorized layer."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], layers: Parameterization) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Flatten(), layers.linear(math.prod(input_shape), 32), nn.ReLU())
        self.head = ORIGINAL.head(32, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.hidden(x))


def load_toy(root: Path, download: bool, seed: int) -> FederatedDataset:
    """8×8 one-channel images whose brightness says their class, with pixel noise drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(TOY_SAMPLES + TOY_TEST) % TOY_CLASSES
    noise = torch.randint(0, 40, (len(y), *TOY_SHAPE), generator=g)
    x = (y.view(-1, 1, 1, 1) * 60 + noise).to(torch.uint8)
    return FederatedDataset("toy_digits", "image", x[:TOY_SAMPLES], y[:TOY_SAMPLES], x[TOY_SAMPLES:],
                            y[TOY_SAMPLES:], TOY_CLASSES, (0.45,), (0.27,))


def check_toy(root: Path) -> None:
    if not (root / "toy_digits").is_dir():
        raise DatasetNotFoundError(f"toy_digits: no folder {root / 'toy_digits'}; make it")


TOY_ARCH = Architecture("tiny_mlp", "image", TinyMLP, reported_on="toy_digits")
TOY_DATA = DatasetInfo("toy_digits", "image", TOY_CLASSES, TOY_SHAPE, False, load=load_toy, check=check_toy)


@pytest.fixture
def registered(monkeypatch):
    """The toy architecture and dataset in the registries for one test (what their one line there does)."""
    monkeypatch.setitem(ARCHITECTURES, TOY_ARCH.name, TOY_ARCH)
    monkeypatch.setitem(DATASETS, TOY_DATA.name, TOY_DATA)


def toy_config(tmp_path: Path, **model) -> TrialConfig:
    return TrialConfig.from_dict({
        "data": {"dataset": "toy_digits", "root": str(tmp_path), "num_clients": 4, "clients_per_round": 2},
        "model": {"arch": "tiny_mlp", "parameterization": "fedpara", "gamma": 0.5, **model},
        "train": {"rounds": 1, "local_epochs": 1, "batch_size": 16, "lr": 0.05},
        "resources": {"num_workers": 1, "cpus_per_worker": 0.5, "driver_cpus": 0.25},
        "logging": {"results_dir": str(tmp_path / "results"), "checkpoint_every": 0, "wandb": "disabled"}})


def test_unregistered_names_are_refused_by_the_config():
    with pytest.raises(ConfigError, match=r"^model\.arch: unknown value 'tiny_mlp'"):
        TrialConfig.from_dict({"model": {"arch": "tiny_mlp"}})
    with pytest.raises(ConfigError, match=r"^data\.dataset: unknown value 'toy_digits'"):
        TrialConfig.from_dict({"data": {"dataset": "toy_digits"}})


@pytest.mark.usefixtures("registered")
def test_the_config_accepts_a_registered_architecture_and_dataset_and_matches_their_kinds(tmp_path):
    cfg = toy_config(tmp_path)
    assert (cfg.model.arch, cfg.data.dataset) == ("tiny_mlp", "toy_digits")
    assert TrialConfig.from_dict({"model": {"arch": "tiny_mlp"}}).data.dataset == "synthetic"  # any image data
    with pytest.raises(ConfigError, match=r"^model\.arch: tiny_mlp cannot read the text dataset synthetic_text"):
        TrialConfig.from_dict({"model": {"arch": "tiny_mlp"}, "data": {"dataset": "synthetic_text"}})
    with pytest.raises(ConfigError, match=r"^model\.arch: lstm cannot read the image dataset toy_digits"):
        TrialConfig.from_dict({"model": {"arch": "lstm"}, "data": {"dataset": "toy_digits"}})
    with pytest.raises(ConfigError, match=r"^data\.partition: 'natural' needs .* toy_digits has none"):
        TrialConfig.from_dict({"data": {"dataset": "toy_digits", "partition": "natural"}})


@pytest.mark.usefixtures("registered")
def test_the_factory_and_the_budget_solver_build_a_registered_architecture(tmp_path):
    original = build_model("tiny_mlp", "original", num_classes=4, input_shape=TOY_SHAPE)
    assert count_parameters(original) == (64 * 32 + 32) + (32 * 4 + 4)
    fedpara = build_model("tiny_mlp", "fedpara", num_classes=4, input_shape=TOY_SHAPE, gamma=0.5)
    assert fedpara(torch.zeros(3, *TOY_SHAPE)).shape == (3, 4)
    assert count_parameters(fedpara) < count_parameters(original)
    solved = solve_for("tiny_mlp", "fedpara", 4, TOY_SHAPE, 0.5)
    sized = build_model("tiny_mlp", "fedpara", num_classes=4, input_shape=TOY_SHAPE, param_ratio=0.5)
    assert count_parameters(sized) == solved.params and solved.original == count_parameters(original)
    with pytest.raises(ValueError, match=r"input_shape must be \(C, H, W\) of positive ints for 'tiny_mlp'"):
        build_model("tiny_mlp", "original", num_classes=4, input_shape=(64,))
    model = trial_model(toy_config(tmp_path))  # the dataset's record gives the classes and the input shape
    assert model(torch.zeros(2, *TOY_SHAPE)).shape == (2, TOY_CLASSES)


@pytest.mark.usefixtures("registered")
def test_the_report_lists_a_registered_architecture_on_the_dataset_its_record_names(capsys):
    rows = report_rows(["tiny_mlp"], ["original", "fedpara"], [0.5])
    fedpara = build_model("tiny_mlp", "fedpara", num_classes=TOY_CLASSES, input_shape=TOY_SHAPE, gamma=0.5)
    assert rows[0][:4] == ("tiny_mlp", "toy_digits", "original", "-") and rows[0][5] == "2,212"
    assert rows[1][:4] == ("tiny_mlp", "toy_digits", "fedpara", "0.5")
    assert rows[1][5] == f"{count_parameters(fedpara):,}" and rows[1][6] == f"{count_parameters(fedpara) / 2212:.3f}"
    report_main(["--parameterization", "original"])  # every registered architecture by default
    assert "| tiny_mlp | toy_digits | original | - | - | 2,212 | 1.000 |" in capsys.readouterr().out


@pytest.mark.usefixtures("registered")
def test_a_registered_dataset_is_checked_and_loaded_through_its_record(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="toy_digits: no folder"):
        check_available("toy_digits", tmp_path)
    with pytest.raises(DatasetNotFoundError):  # not downloadable: download=True does not excuse it
        check_available("toy_digits", tmp_path, download=True)
    (tmp_path / "toy_digits").mkdir()
    check_available("toy_digits", tmp_path)
    data = load_dataset("toy_digits", tmp_path, seed=5)
    assert data.x_train.shape == (TOY_SAMPLES, *TOY_SHAPE) and data.input_shape == TOY_DATA.input_shape
    assert torch.equal(data.x_test, load_dataset("toy_digits", tmp_path, seed=5).x_test)
    assert not torch.equal(data.x_test, load_dataset("toy_digits", tmp_path, seed=6).x_test)


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize("augment", [False, True])
def test_a_worker_trains_the_toy_model_on_the_toy_data_with_the_augmentation_its_record_asks(
        tmp_path, monkeypatch, augment):
    from runner.engine.client_worker import ClientWorker

    monkeypatch.setitem(DATASETS, "toy_digits", dataclasses.replace(TOY_DATA, augment=augment))
    cfg = toy_config(tmp_path)
    worker = ClientWorker(cfg, 0, 1)
    assert worker.train_preprocess.augment is augment and worker.eval_preprocess.augment is False
    assert sum(worker.client_sizes()) == TOY_SAMPLES
    algorithm = cfg.algorithm.build()
    _, initial_global, initial_local = initial_model(cfg, algorithm)
    worker.setup(initial_local, initial_global)
    payload = to_wire(algorithm.broadcast(initial_global, algorithm.init_server_state(initial_global)))
    _, (partial, _, _) = worker.train(1, [0, 1], [], payload, 0.05)  # no clients planned next
    sizes = worker.client_sizes()
    assert partial.weight == sizes[0] + sizes[1] and len(partial.losses) == 2
    assert all(np.isfinite(loss) and loss > 0 for loss in partial.losses)
