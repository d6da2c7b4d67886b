"""The config is validated once, at the edge, with errors that name the bad field."""

from __future__ import annotations

import pytest

from runner.config import ConfigError, TrialConfig, config_columns, unflatten


def test_defaults_are_valid_and_flat_keys_round_trip():
    cfg = TrialConfig.from_dict({})
    flat = cfg.flat()
    assert flat["model.gamma"] == 0.1 and flat["data.dataset"] == "synthetic"
    assert TrialConfig.from_dict(unflatten(flat)) == cfg


def test_an_algorithm_reads_only_its_own_settings():
    prox = TrialConfig.from_dict({"algorithm": {"name": "fedprox", "mu": 0.1}})
    assert prox.algorithm.settings.mu == 0.1 and prox.flat()["algorithm.mu"] == 0.1
    assert "algorithm.mu" not in TrialConfig.from_dict({"algorithm": {"name": "fedavg"}}).flat()
    with pytest.raises(ConfigError, match=r"^algorithm\.mu: fedavg does not read it \(read by fedprox\)"):
        TrialConfig.from_dict({"algorithm": {"name": "fedavg", "mu": 0.1}})
    with pytest.raises(ConfigError, match=r"^algorithm\.alpha: scaffold does not read it \(read by feddyn\)"):
        TrialConfig.from_dict({"algorithm": {"name": "scaffold", "alpha": 0.1}})
    with pytest.raises(ConfigError, match=r"^algorithm\.mu: must be >= 0, got -1"):
        TrialConfig.from_dict({"algorithm": {"name": "fedprox", "mu": -1}})
    with pytest.raises(ConfigError, match=r"^algorithm\.name: unknown value 'fedpaq'.*upload\.quantize_levels"):
        TrialConfig.from_dict({"algorithm": {"name": "fedpaq"}})
    columns = config_columns()  # the results table has a column for every algorithm's settings
    assert {"algorithm.mu", "algorithm.alpha", "algorithm.server_lr", "upload.quantize_levels"} <= set(columns)


def test_a_quantized_upload_is_part_of_a_trial_s_name_and_identity():
    plain = TrialConfig.from_dict({"algorithm": {"name": "feddyn"}})
    quantized = TrialConfig.from_dict({"algorithm": {"name": "feddyn"}, "upload": {"quantize_levels": 16}})
    assert "-feddyn-q16-" in quantized.trial_name and "-q" not in plain.trial_name.split("feddyn")[1][:2]
    with pytest.raises(ConfigError, match=r"^upload\.quantize_levels: must be >= 1"):
        TrialConfig.from_dict({"upload": {"quantize_levels": 0}})


@pytest.mark.parametrize("override, field", [
    ({"algorithm": {"name": "fedsgdx"}}, "algorithm.name"),
    ({"model": {"gamma": 1.5}}, "model.gamma"),
    ({"model": {"gamma": None}}, "model.gamma"),
    ({"data": {"num_clients": 10, "clients_per_round": 11}}, "data.clients_per_round"),
    ({"resources": {"gpus_per_worker": 1.5}}, "resources.gpus_per_worker"),
    ({"data": {"dataset": "imagenet"}}, "data.dataset"),
    ({"model": {"gama": 0.3}}, "model.gama"),
    ({"train": {"rounds": "ten"}}, "train.rounds"),
    ({"model": {"arch": "lstm"}}, "model.arch"),
    ({"data": {"partition": "natural"}}, "data.partition"),
    ({"algorithm": {"name": "pfedpara"}}, "algorithm.name"),
    ({"optimizer": {}}, "optimizer"),
    ({"train": {"precision": "fp16"}}, "train.precision"),
    ({"train": {"precision": 16}}, "train.precision"),
    ({"data": {"client_fraction": 0}}, "data.client_fraction"),
    ({"data": {"client_fraction": 1.2}}, "data.client_fraction"),
    ({"data": {"dataset": "mnist"}, "model": {"arch": "vgg16"}}, "model.arch"),  # 28×28 under five 2×2 pools
])
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError) as error:
        TrialConfig.from_dict(override)
    assert str(error.value).startswith(field + ":"), str(error.value)


def test_trial_name_is_stable_and_distinguishes_configs():
    a = TrialConfig.from_dict({"model": {"gamma": 0.3}})
    b = TrialConfig.from_dict({"model": {"gamma": 0.3}, "logging": {"results_dir": "elsewhere"}})
    c = TrialConfig.from_dict({"model": {"gamma": 0.4}})
    assert a.trial_name == b.trial_name != c.trial_name
    assert "g0.3" in a.trial_name


def test_precision_fp32_keeps_the_names_of_trials_from_before_the_field_and_bf16_is_its_own_trial():
    unset = TrialConfig.from_dict({"model": {"gamma": 0.3}})
    fp32 = TrialConfig.from_dict({"model": {"gamma": 0.3}, "train": {"precision": "fp32"}})
    bf16 = TrialConfig.from_dict({"model": {"gamma": 0.3}, "train": {"precision": "bf16"}})
    assert unset.train.precision == "fp32" and unset.flat()["train.precision"] == "fp32"
    # the name main gave this config before train.precision existed
    assert unset.trial_name == fp32.trial_name == "synthetic-iid-cnn-fedpara-g0.3-fedavg-s0-2accab0b"
    assert bf16.trial_name.startswith("synthetic-iid-cnn-fedpara-g0.3-fedavg-bf16-s0-")
    assert bf16.trial_name[-8:] != fp32.trial_name[-8:]


def test_a_client_fraction_names_its_trials_and_the_default_leaves_earlier_names_alone():
    # names of trials written before data.client_fraction existed: their results and checkpoints still resume
    assert TrialConfig().trial_name == "synthetic-iid-cnn-fedpara-g0.1-fedavg-s0-e4d34333"
    personal = {"data": {"dataset": "femnist", "partition": "natural"}, "algorithm": {"name": "pfedpara"},
                "model": {"arch": "fc2", "parameterization": "pfedpara", "gamma": 0.5}}
    assert TrialConfig.from_dict(personal).trial_name == "femnist-natural-fc2-pfedpara-g0.5-pfedpara-s0-bd9df3d2"
    scarce = TrialConfig.from_dict({**personal, "data": {**personal["data"], "client_fraction": 0.1}})
    assert scarce.trial_name.startswith("femnist-natural-frac0.1-fc2-pfedpara-g0.5-pfedpara-s0-")
    assert scarce.trial_name.rsplit("-", 1)[1] != "bd9df3d2" and scarce.flat()["data.client_fraction"] == 0.1


def test_an_image_too_small_for_the_architecture_is_refused_with_the_config():
    expected = (r"^model.arch: vgg16 needs images of at least 32×32, got input_shape \(1, 28, 28\), "
                r"the shape of femnist$")
    with pytest.raises(ConfigError, match=expected):
        TrialConfig.from_dict({"data": {"dataset": "femnist"}, "model": {"arch": "vgg16"}})
    resnet = TrialConfig.from_dict({"data": {"dataset": "femnist"}, "model": {"arch": "resnet18"}})
    assert resnet.model.arch == "resnet18"  # no pools to outgrow the image


def test_cyclic_sampling_names_its_trials_and_uniform_leaves_earlier_names_alone():
    uniform = TrialConfig.from_dict({"data": {"client_sampling": "uniform"}})
    cyclic = TrialConfig.from_dict({"data": {"client_sampling": "cyclic"}})
    assert uniform.trial_name == TrialConfig().trial_name == "synthetic-iid-cnn-fedpara-g0.1-fedavg-s0-e4d34333"
    assert cyclic.trial_name.startswith("synthetic-iid-cyclic-cnn-fedpara-g0.1-fedavg-s0-")
    assert cyclic.trial_name[-8:] != "e4d34333"
    with pytest.raises(ConfigError, match=r"^data.client_sampling: unknown value 'random'"):
        TrialConfig.from_dict({"data": {"client_sampling": "random"}})


def test_missing_dataset_fails_before_any_ray_work(tmp_path, monkeypatch):
    from partitions import DatasetNotFoundError
    from runner.study import trial

    def no_actors(*args, **kwargs):
        raise AssertionError("actors were started for a trial whose dataset is missing")

    monkeypatch.setattr(trial, "run_rounds", no_actors)
    cfg = TrialConfig.from_dict({"data": {"dataset": "cifar10", "root": str(tmp_path)},
                                 "logging": {"results_dir": str(tmp_path / "results")}})
    with pytest.raises(DatasetNotFoundError, match="cifar"):
        trial.run_trial(cfg)
    assert not (tmp_path / "results").exists()
