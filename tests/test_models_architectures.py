"""Architectures and build_model: shapes, parameter budgets, which names stay local, state round trips."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models import (
    ARCHITECTURES,
    PARAMETERIZATIONS,
    FactorizedConv2d,
    FactorizedLinear,
    build_model,
    count_parameters,
    float_bytes,
    head_parameter_names,
    local_parameter_names,
    original_parameter_count,
    original_params,
    quantized_bytes,
    r_max,
    r_min,
)
from models.lstm import LSTMLayer
from models.parameterization import ORIGINAL
from partitions import DATASETS


def reported_workload(arch: str) -> tuple[int, tuple[int, ...]]:
    """(num_classes, input_shape) of the dataset the architecture's record is reported on."""
    info = DATASETS[ARCHITECTURES[arch].reported_on]
    return info.num_classes, info.input_shape


# (num_classes, input_shape) per architecture: its reported workload, but 100 classes for ResNet-18, MNIST's
# shape for the small CNN and a short text for the LSTM (any architecture added later gets its own).
WORKLOAD = {arch: reported_workload(arch) for arch in ARCHITECTURES} | {
    "resnet18": (100, (3, 32, 32)), "cnn": (10, (1, 28, 28)), "lstm": (80, (10,))}
FACTORIZED = ("lowrank", "fedpara", "pfedpara")


def build(arch: str, parameterization: str, **knob) -> nn.Module:
    num_classes, input_shape = WORKLOAD[arch]
    if parameterization != "original" and not knob:
        knob = {"gamma": 0.1}
    return build_model(arch, parameterization, num_classes=num_classes, input_shape=input_shape, **knob)


def example_input(arch: str, batch: int = 2) -> torch.Tensor:
    num_classes, input_shape = WORKLOAD[arch]
    if ARCHITECTURES[arch].input_kind == "text":
        return torch.randint(0, num_classes, (batch, *input_shape))
    return torch.randn(batch, *input_shape)


def factorized_layers(model: nn.Module):
    for name, module in model.named_modules():
        if isinstance(module, FactorizedLinear):
            yield name, module, (module.out_features, module.in_features, None)
        elif isinstance(module, FactorizedConv2d):
            yield name, module, (module.out_channels, module.in_channels, module.kernel_size[0])


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_every_model_maps_inputs_to_logits(arch, parameterization):
    torch.manual_seed(0)
    model = build(arch, parameterization).eval()
    logits = model(example_input(arch))
    assert logits.shape == (2, WORKLOAD[arch][0]) and torch.isfinite(logits).all()
    assert isinstance(model.head, nn.Module) and head_parameter_names(model) >= {"head.bias"}
    assert (parameterization == "original") == (not list(factorized_layers(model)))


def test_which_layers_are_factorized():
    vgg = build("vgg16", "fedpara")
    assert sum(isinstance(m, FactorizedConv2d) for m in vgg.modules()) == 13  # every conv
    assert not any(isinstance(m, FactorizedLinear) for m in vgg.modules())  # classifier and head stay dense
    resnet = build("resnet18", "fedpara")
    assert sum(isinstance(m, FactorizedConv2d) for m in resnet.modules()) == 20  # 17 3×3 + 3 1×1 shortcuts
    assert not any(isinstance(m, nn.Conv2d) for m in resnet.modules())
    lstm = build("lstm", "fedpara")
    assert sum(isinstance(m, FactorizedLinear) for m in lstm.modules()) == 4  # ih and hh gates of 2 layers
    assert isinstance(lstm.head, nn.Linear)
    assert isinstance(build("fc2", "pfedpara").head, FactorizedLinear)  # FC-2: both layers, as the paper
    cnn = build("cnn", "fedpara")
    assert isinstance(cnn.head, nn.Linear) and isinstance(cnn.hidden[0], FactorizedLinear)
    assert sum(isinstance(m, FactorizedConv2d) for m in cnn.modules()) == 2


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("parameterization", FACTORIZED)
def test_gamma_one_never_exceeds_the_original(arch, parameterization):
    model = build(arch, parameterization, gamma=1.0)
    for name, layer, (out_dim, in_dim, k) in factorized_layers(model):
        factor_count = sum(p.numel() for n, p in layer.named_parameters() if n != "bias")
        assert factor_count <= original_params(out_dim, in_dim, k), name
    assert count_parameters(model) <= original_parameter_count(arch, *WORKLOAD[arch])


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_gamma_zero_gives_the_full_rank_minimum(arch):
    for name, layer, (out_dim, in_dim, k) in factorized_layers(build(arch, "fedpara", gamma=0.0)):
        assert r_min(out_dim, in_dim) <= r_max(out_dim, in_dim, k), name  # no layer needs the tiny-layer clamp
        assert layer.rank == r_min(out_dim, in_dim), name


def test_vgg16_fedpara_at_gamma_0_1_keeps_about_ten_percent():
    original = original_parameter_count("vgg16", 10, (3, 32, 32))
    ratios = {p: count_parameters(build("vgg16", p, gamma=0.1)) / original for p in FACTORIZED}
    print(f"VGG16 CIFAR-10 at γ=0.1: {ratios} of {original:,} (paper: VGG16_FedPara 10.1 %)")
    assert original == 15_253_578
    assert 0.100 < ratios["fedpara"] < 0.102
    assert ratios["pfedpara"] == ratios["fedpara"]
    assert 0.099 < ratios["lowrank"] <= ratios["fedpara"]  # equal budget, never more


def test_lstm_fedpara_at_gamma_0_keeps_about_nineteen_percent():
    ratio = count_parameters(build("lstm", "fedpara", gamma=0.0)) / original_parameter_count("lstm", 80, (80,))
    print(f"LSTM Shakespeare at γ=0: {ratio:.3f} (paper: LSTM_FedPara 19 %)")
    assert 0.18 < ratio < 0.19


def test_ratio_knob_sets_each_layer_to_the_requested_fraction():
    model = build("resnet18", "fedpara", ratio=0.3)
    for name, layer, (out_dim, in_dim, k) in factorized_layers(model):
        factor_count = sum(p.numel() for n, p in layer.named_parameters() if n != "bias")
        if layer.rank > r_min(out_dim, in_dim):
            assert 0.3 <= factor_count / original_params(out_dim, in_dim, k) < 0.33, name


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_local_names_are_exactly_the_w2_factors(arch):
    model = build(arch, "pfedpara")
    state = model.state_dict()
    local = local_parameter_names(model)
    expected = {f"{name}.{letter}2" for name, layer, (_, _, k) in factorized_layers(model)
                for letter in (("t", "x", "y") if k else ("x", "y"))}
    assert local == expected and local <= set(state)
    for other in ("original", "lowrank", "fedpara"):
        assert local_parameter_names(build(arch, other)) == set()


def test_head_names():
    assert head_parameter_names(build("vgg16", "fedpara")) == {"head.weight", "head.bias"}
    assert head_parameter_names(build("fc2", "pfedpara")) == {"head.x1", "head.y1", "head.x2", "head.y2", "head.bias"}


@pytest.mark.parametrize("arch", ["cnn", "lstm", "resnet18"])
def test_state_round_trips_through_a_global_local_split(arch):
    torch.manual_seed(1)
    trained = build(arch, "pfedpara").eval()
    with torch.no_grad():  # a head starts at zero (every model's first logits are 0): give it trained values
        for p in trained.head.parameters():
            p.normal_()
    state = trained.state_dict()
    local = local_parameter_names(trained)
    global_part = {n: t for n, t in state.items() if n not in local}
    local_part = {n: t for n, t in state.items() if n in local}

    torch.manual_seed(2)
    fresh = build(arch, "pfedpara").eval()
    x = example_input(arch)
    assert not torch.equal(fresh(x), trained(x))
    missing_global = fresh.load_state_dict(global_part, strict=False).missing_keys
    missing_local = fresh.load_state_dict(local_part, strict=False).missing_keys
    assert set(missing_global) == local and set(missing_local) == set(global_part)
    assert torch.equal(fresh(x), trained(x))


def test_bytes_on_the_wire():
    model = build("fc2", "pfedpara")
    state = model.state_dict()
    sent = [t.numel() for n, t in state.items() if n not in local_parameter_names(model)]
    assert float_bytes(sent) == 4 * sum(sent)
    assert 0 < sum(sent) < count_parameters(model)
    # 16 levels: a sign bit and 5 level bits an element, a 32-bit norm a tensor, each tensor in whole bytes
    assert quantized_bytes([10], 16) == 12 and quantized_bytes([10, 1], 16) == 12 + 5


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_original_parameter_count_matches_a_built_model(arch):
    assert original_parameter_count(arch, *WORKLOAD[arch]) == count_parameters(build(arch, "original"))


def test_lstm_layer_matches_torch_lstm():
    torch.manual_seed(3)
    ours = LSTMLayer(ORIGINAL, 8, 16)
    reference = nn.LSTM(8, 16, batch_first=True)
    with torch.no_grad():
        reference.weight_ih_l0.copy_(ours.input_gates.weight)
        reference.weight_hh_l0.copy_(ours.hidden_gates.weight)
        reference.bias_ih_l0.copy_(torch.randn(64))
        reference.bias_hh_l0.zero_()
        ours.input_gates.bias.copy_(reference.bias_ih_l0)
    x = torch.randn(2, 7, 8)
    torch.testing.assert_close(ours(x), reference(x)[0])


def test_gradients_reach_every_parameter_of_a_factorized_lstm():
    model = build("lstm", "pfedpara")
    with torch.no_grad():  # past the first step: a zero head (its start) passes no gradient down
        model.head.weight.normal_(0.0, 0.1)
    nn.functional.cross_entropy(model(example_input("lstm")), torch.tensor([1, 2])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kwargs, argument", [
    ({"arch": "vgg19"}, "arch"),
    ({"parameterization": "tucker"}, "parameterization"),
    ({"gamma": None}, "gamma"),
    ({"gamma": 0.1, "ratio": 0.2}, "gamma"),
    ({"gamma": 1.5}, "gamma"),
    ({"gamma": None, "ratio": 0.0}, "ratio"),
    ({"num_classes": 0}, "num_classes"),
    ({"input_shape": (32, 32)}, "input_shape"),
    ({"input_shape": (3, 16, 16)}, "input_shape"),  # too small for five max-pools
])
def test_bad_arguments_are_named(kwargs, argument):
    args = {"arch": "vgg16", "parameterization": "fedpara", "num_classes": 10, "input_shape": (3, 32, 32),
            "gamma": 0.1} | kwargs
    with pytest.raises(ValueError, match=argument):
        build_model(args.pop("arch"), args.pop("parameterization"), **args)


def test_original_ignores_the_knobs():
    a = build_model("fc2", "original", num_classes=10, input_shape=(1, 28, 28), gamma=0.5)
    assert count_parameters(a) == original_parameter_count("fc2", 10, (1, 28, 28))
