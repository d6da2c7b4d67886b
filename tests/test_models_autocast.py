"""FedPara's layers under bfloat16 autocast on the CPU (what ``train.precision: bf16`` runs): the composed
weight and the output are bfloat16, the factors and their gradients stay fp32, and the output stays close
to the fp32 one. A whole bf16 trial (tests/study/test_trial.py) uses the original FC-2, because composing a
FedPara weight under autocast is slow on a CPU without native bfloat16."""

from __future__ import annotations

import pytest
import torch

from models import FedParaConv2d, FedParaLinear, LowRankConv2d, LowRankLinear, PFedParaConv2d, PFedParaLinear

CONVS = (FedParaConv2d, LowRankConv2d, PFedParaConv2d)


@pytest.mark.parametrize("layer_cls", [FedParaLinear, LowRankLinear, PFedParaLinear, *CONVS])
def test_a_factorized_layer_under_bf16_autocast_computes_in_bf16_and_keeps_fp32_factors(layer_cls):
    torch.manual_seed(0)
    if layer_cls in CONVS:
        layer, x = layer_cls(3, 8, 3, padding=1, rank=2), torch.randn(4, 3, 6, 6)
    else:
        layer, x = layer_cls(12, 8, rank=3), torch.randn(4, 12)
    reference = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16 and reference.dtype == torch.float32
    torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0.05)
    out.float().square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32, name
        assert p.grad.abs().sum() > 0, name
