"""Settings that make a worker's training fast on a CUDA GPU; on a CPU nothing changes.

They are chosen once, where a worker picks its device, so the training loop itself stays the same on
every device (and fp32 results on a CPU stay bit-identical to before these settings existed).
"""

from __future__ import annotations

import resource

import torch
from torch import nn

from models import FactorizedConv2d


def use_fast_cuda_kernels(device: torch.device) -> None:
    """On CUDA, let cuDNN time its convolution algorithms once per input shape and keep the fastest (every
    client's batches have the same few shapes, so the timing pays off within a round), and let fp32 matmuls
    and convolutions use TF32 tensor cores (about 10 bits of mantissa, as the paper's GPUs did by default).
    Process-wide switches, so set in the worker process; a CPU worker leaves them alone."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def memory_format_for(model: nn.Module, device: torch.device) -> torch.memory_format:
    """Channels-last for a convolutional model on CUDA: cuDNN's tensor-core convolutions read NHWC, so NCHW
    weights and batches would be transposed around every convolution. Elsewhere the default layout."""
    convolutional = any(isinstance(m, (nn.Conv2d, FactorizedConv2d)) for m in model.modules())
    return torch.channels_last if device.type == "cuda" and convolutional else torch.contiguous_format


def peak_memory_mib(device: torch.device) -> float:
    """This process's peak memory in MiB: on a GPU the most CUDA memory torch has allocated, on a CPU the
    peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
