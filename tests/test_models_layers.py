"""The layers' mathematics: ranks reached, equivalence with F.conv2d / F.linear, counts, init scale, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models import (
    FedParaConv2d,
    FedParaLinear,
    LowRankConv2d,
    LowRankLinear,
    PFedParaConv2d,
    PFedParaLinear,
    fedpara_params,
    lowrank_params,
    lowrank_rank_for_budget,
    pfedpara_params,
    rank_from_gamma,
)

LINEARS = (FedParaLinear, LowRankLinear, PFedParaLinear)
CONVS = (FedParaConv2d, LowRankConv2d, PFedParaConv2d)
COUNT = {FedParaLinear: fedpara_params, FedParaConv2d: fedpara_params, LowRankLinear: lowrank_params,
         LowRankConv2d: lowrank_params, PFedParaLinear: pfedpara_params, PFedParaConv2d: pfedpara_params}


def matrix_rank(w: torch.Tensor) -> int:
    return int(torch.linalg.matrix_rank(w.double()))


@pytest.mark.parametrize("m, n, r", [(40, 50, 4), (30, 20, 5), (64, 64, 3)])
def test_fedpara_linear_reaches_rank_r_squared_where_lowrank_with_the_same_budget_cannot(m, n, r):
    torch.manual_seed(0)
    fedpara = FedParaLinear(n, m, rank=r, dtype=torch.float64)
    assert matrix_rank(fedpara.composed_weight()) == min(r * r, m, n)

    r_low = lowrank_rank_for_budget(fedpara_params(m, n, None, r), m, n, None)
    lowrank = LowRankLinear(n, m, rank=r_low, dtype=torch.float64)
    assert r_low == 2 * r
    assert matrix_rank(lowrank.composed_weight()) <= r_low < min(r * r, m, n)


@pytest.mark.parametrize("layer_cls", [FedParaConv2d, PFedParaConv2d])
@pytest.mark.parametrize("r", [3, 4])
def test_fedpara_conv_unfoldings_reach_rank_r_squared(layer_cls, r):
    torch.manual_seed(1)
    out_c, in_c, k = 20, 12, 3
    w = layer_cls(in_c, out_c, k, rank=r, dtype=torch.float64).composed_weight()
    mode1 = w.reshape(out_c, in_c * k * k)  # O × I·k·k
    mode2 = w.transpose(0, 1).reshape(in_c, out_c * k * k)  # I × O·k·k
    if layer_cls is FedParaConv2d:
        assert matrix_rank(mode1) == min(r * r, out_c) and matrix_rank(mode2) == min(r * r, in_c)
    else:  # W1 ⊙ W2 + W1: rank ≤ r² + r
        assert matrix_rank(mode1) == min(r * r + r, out_c) and matrix_rank(mode2) == min(r * r + r, in_c)


def test_tucker2_unfoldings_have_rank_at_most_r():
    torch.manual_seed(2)
    w = LowRankConv2d(12, 20, 3, rank=5, dtype=torch.float64).composed_weight()
    assert matrix_rank(w.reshape(20, -1)) == 5 and matrix_rank(w.transpose(0, 1).reshape(12, -1)) == 5


@pytest.mark.parametrize("layer_cls", CONVS)
@pytest.mark.parametrize("stride, padding, dilation, bias", [(2, 1, 1, True), (1, 0, 2, False), (1, "same", 1, True)])
def test_conv_forward_is_conv2d_with_the_composed_weight(layer_cls, stride, padding, dilation, bias):
    torch.manual_seed(3)
    layer = layer_cls(6, 10, 3, stride, padding, dilation, bias=bias, rank=3)
    if bias:
        nn.init.normal_(layer.bias)
    x = torch.randn(2, 6, 11, 11)
    expected = F.conv2d(x, layer.composed_weight(), layer.bias, stride=stride, padding=padding, dilation=dilation)
    dense = nn.Conv2d(6, 10, 3, stride, padding, dilation, bias=bias)
    assert layer(x).shape == dense(x).shape == expected.shape
    torch.testing.assert_close(layer(x), expected)
    assert layer.composed_weight().shape == dense.weight.shape


@pytest.mark.parametrize("layer_cls", LINEARS)
def test_linear_forward_is_linear_with_the_composed_weight(layer_cls):
    torch.manual_seed(4)
    layer = layer_cls(12, 7, rank=3)
    nn.init.normal_(layer.bias)
    x = torch.randn(2, 5, 12)
    torch.testing.assert_close(layer(x), F.linear(x, layer.composed_weight(), layer.bias))
    assert layer(x).shape == nn.Linear(12, 7)(x).shape and layer.weight_matrix().shape == (7, 12)


@pytest.mark.parametrize("layer_cls", LINEARS + CONVS)
@pytest.mark.parametrize("bias", [True, False])
def test_parameter_counts_match_the_closed_forms(layer_cls, bias):
    is_conv = layer_cls in CONVS
    out_dim, in_dim, k, r = 48, 20, (3 if is_conv else None), 5
    layer = layer_cls(in_dim, out_dim, 3, bias=bias, rank=r) if is_conv else layer_cls(in_dim, out_dim, bias, rank=r)
    weight_count = COUNT[layer_cls](out_dim, in_dim, k, r)
    assert sum(p.numel() for p in layer.parameters()) == weight_count + (out_dim if bias else 0)
    assert layer.rank == r


def test_factor_names_and_local_factors():
    conv, linear = PFedParaConv2d(4, 8, 3, rank=2), PFedParaLinear(4, 8, rank=2)
    assert list(conv.state_dict()) == ["t1", "x1", "y1", "t2", "x2", "y2", "bias"]
    assert list(linear.state_dict()) == ["x1", "y1", "x2", "y2", "bias"]
    assert conv.local_factor_names == ("t2", "x2", "y2") and linear.local_factor_names == ("x2", "y2")
    assert FedParaConv2d.local_factor_names == () == LowRankLinear.local_factor_names
    assert list(LowRankConv2d(4, 8, 3, rank=2).state_dict()) == ["t", "x", "y", "bias"]


@pytest.mark.parametrize("layer_cls", LINEARS + CONVS)
@pytest.mark.parametrize("tanh", [False, True])
def test_gradients_reach_every_factor(layer_cls, tanh):
    torch.manual_seed(5)
    if layer_cls in CONVS:
        layer, x = layer_cls(3, 8, 3, padding=1, rank=2, tanh=tanh), torch.randn(2, 3, 6, 6)
    else:
        layer, x = layer_cls(9, 8, rank=2, tanh=tanh), torch.randn(2, 9)
    layer(x).square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("layer_cls", [FedParaLinear, FedParaConv2d])
def test_tanh_applies_to_each_inner_product(layer_cls):
    layer = layer_cls(5, 6, 3, rank=2, tanh=True) if layer_cls is FedParaConv2d else layer_cls(5, 6, rank=2, tanh=True)
    expected = torch.tanh(layer.factor_set("1")) * torch.tanh(layer.factor_set("2"))
    torch.testing.assert_close(layer.composed_weight(), expected)
    assert "tanh=True" in repr(layer)


def test_pfedpara_composes_global_times_local_plus_one():
    layer = PFedParaLinear(5, 6, rank=2)
    torch.testing.assert_close(layer.composed_weight(), layer.factor_set("1") * (layer.factor_set("2") + 1))
    with torch.no_grad():
        layer.x2.zero_()  # W2 = 0: the layer is exactly its global part
    torch.testing.assert_close(layer.composed_weight(), layer.factor_set("1"))


# (out, in, kernel) of real layers, at the ranks γ = 0.1 and 0.9 give them.
INIT_SHAPES = [(64, 3, 3), (128, 64, 3), (512, 512, 3), (200, 784, None), (10, 200, None), (1024, 256, None)]


@pytest.mark.parametrize("out_dim, in_dim, k", INIT_SHAPES)
@pytest.mark.parametrize("gamma", [0.1, 0.9])
def test_composed_weight_starts_near_kaiming_scale(out_dim, in_dim, k, gamma):
    torch.manual_seed(6)
    fan_in = in_dim * (k * k if k else 1)
    kaiming_std = math.sqrt(2.0 / fan_in)
    r = rank_from_gamma(gamma, out_dim, in_dim, k)
    for layer_cls in (CONVS if k else LINEARS):
        if layer_cls is LowRankConv2d or layer_cls is LowRankLinear:
            rank = lowrank_rank_for_budget(fedpara_params(out_dim, in_dim, k, r), out_dim, in_dim, k)
        else:
            rank = r
        layer = layer_cls(in_dim, out_dim, k, rank=rank) if k else layer_cls(in_dim, out_dim, rank=rank)
        std = layer.composed_weight().std().item()
        print(f"{layer_cls.__name__}({out_dim}, {in_dim}, k={k}) rank {rank}: std/kaiming = {std / kaiming_std:.2f}")
        assert kaiming_std / 2 < std < kaiming_std * 2
        assert abs(layer.composed_weight().mean().item()) < kaiming_std / 4


def test_groups_other_than_one_are_refused():
    with pytest.raises(ValueError, match="groups=1"):
        FedParaConv2d(8, 8, 3, groups=2, rank=2)


def test_rank_must_be_positive():
    with pytest.raises(ValueError, match="rank"):
        FedParaLinear(4, 4, rank=0)


def test_extra_repr_shows_shape_and_rank():
    assert "FedParaConv2d(3, 64, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1)" in repr(
        FedParaConv2d(3, 64, 3, 2, 1, rank=3))
    assert "in_features=784, out_features=200, rank=22" in repr(LowRankLinear(784, 200, rank=22))


def test_meta_device_builds_are_shape_only():
    with torch.device("meta"):
        layer = FedParaConv2d(512, 512, 3, rank=52)
    assert layer.x1.is_meta and sum(p.numel() for p in layer.parameters()) == fedpara_params(512, 512, 3, 52) + 512
