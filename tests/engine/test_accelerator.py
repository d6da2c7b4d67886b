"""The CUDA-only speed settings: which models get channels-last, and that such a model computes the same.

No GPU runs these tests; channels-last also works on a CPU, which is where its correctness is checked.
"""

from __future__ import annotations

import copy

import pytest
import torch

from runner.config import TrialConfig
from runner.engine.accelerator import memory_format_for, use_fast_cuda_kernels
from runner.engine.client_data import Preprocess
from runner.engine.model import trial_model

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


def model_of(arch: str, parameterization: str = "fedpara") -> torch.nn.Module:
    torch.manual_seed(0)
    return trial_model(TrialConfig.from_dict({"model": {"arch": arch, "parameterization": parameterization}}))


@pytest.mark.parametrize("arch, parameterization, layout", [
    ("cnn", "fedpara", torch.channels_last), ("cnn", "original", torch.channels_last),
    ("resnet18", "lowrank", torch.channels_last), ("fc2", "fedpara", torch.contiguous_format)])
def test_conv_models_on_cuda_are_channels_last_and_nothing_is_on_a_cpu(arch, parameterization, layout):
    model = model_of(arch, parameterization)
    assert memory_format_for(model, CUDA) == layout
    assert memory_format_for(model, CPU) == torch.contiguous_format


def test_a_cpu_worker_leaves_the_process_wide_switches_alone():
    before = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    use_fast_cuda_kernels(CPU)
    assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32) == before


@pytest.mark.parametrize("arch", ["cnn", "vgg16", "resnet18"])
def test_a_channels_last_model_and_batch_compute_what_the_default_layout_does(arch):
    model = model_of(arch)
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    preprocess = Preprocess.for_dataset("image", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), True, CPU)
    nhwc = Preprocess.for_dataset("image", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), True, CPU, torch.channels_last)
    raw = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    x = preprocess(raw, torch.Generator().manual_seed(1))
    x_fast = nhwc(raw, torch.Generator().manual_seed(1))
    assert x_fast.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, x_fast)
    y = torch.tensor([0, 1, 2, 3])
    torch.manual_seed(2)  # VGG's dropout draws the same masks in both
    loss = torch.nn.functional.cross_entropy(model(x), y)
    torch.manual_seed(2)
    loss_fast = torch.nn.functional.cross_entropy(fast(x_fast), y)
    loss.backward()
    loss_fast.backward()
    assert torch.allclose(loss, loss_fast, rtol=1e-4)
    for (name, p), q in zip(model.named_parameters(), fast.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-3, atol=1e-5), name
    # the state a worker keeps and sends keeps its values whatever the layout
    assert all(torch.equal(a, b) for a, b in zip(fast.state_dict().values(), model.state_dict().values()))
