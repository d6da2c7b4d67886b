"""A client's local training: plain SGD over its data, with an optional per-step gradient correction.

This is the training loop every algorithm runs (FedProx, SCAFFOLD and FedDyn only adjust gradients
before each step), so what the loop knows (the mean loss, how many steps it took) it reports itself.
On an accelerator the loss is summed on the device and read once when the client ends: reading it every
step would make the host wait for the accelerator each step (:class:`LossSum`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Batches = Callable[[], Iterator[tuple[Tensor, Tensor]]]
Correction = Callable[[dict[str, nn.Parameter]], None]


@dataclass
class LocalTraining:
    """Everything a client needs to train for one round; built by the worker for each client."""

    model: nn.Module
    batches: Batches  # a call yields one epoch of (inputs, labels), freshly shuffled
    epochs: int
    lr: float
    momentum: float
    weight_decay: float
    global_names: tuple[str, ...]  # parameters the server owns; the rest stay on the client
    generator: torch.Generator  # the client's own randomness for this round (e.g. quantization)
    precision: str = "fp32"  # train.precision: "bf16" runs the forward pass under bfloat16 autocast
    kept_optimizer: torch.optim.SGD | None = None  # the worker's one SGD over the model's parameters, reused

    def optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.SGD:
        """A fresh SGD for this job: the kept one reset (no momentum, this job's settings), or a new one."""
        if self.kept_optimizer is None:
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        self.kept_optimizer.state.clear()
        for group in self.kept_optimizer.param_groups:
            group.update(lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        return self.kept_optimizer


@dataclass(frozen=True)
class LocalResult:
    """What a client's training loop reports: its sample-weighted mean loss and the SGD steps it took."""

    loss: float
    steps: int


def forward_precision(precision: str, device: torch.device) -> contextlib.AbstractContextManager[None]:
    """Where a forward pass runs in ``precision``: bf16 autocasts matmuls and convolutions to bfloat16 (the
    parameters, their gradients and the optimizer stay fp32); fp32 changes nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class LossSum:
    """Σ (fp32 loss) × (batch size) in float64, read once when the client ends.

    On an accelerator the sum stays on the device: reading a loss every step would make the host wait for
    the device every step. On a CPU reading costs nothing, while the device-side sum costs three tensor
    operations a step (a quarter of an FC-2 client's training), so there it is a Python float. Both are the
    same float64 arithmetic, so the mean loss does not depend on the device it was summed on.
    """

    def __init__(self, device: torch.device, on_device: bool | None = None) -> None:
        on_device = device.type != "cpu" if on_device is None else on_device
        self.device_total = torch.zeros((), dtype=torch.float64, device=device) if on_device else None
        self.host_total = 0.0

    def add(self, loss: Tensor, batch_size: int) -> None:
        if self.device_total is not None:
            self.device_total += loss.detach().double() * batch_size
        else:
            self.host_total += loss.item() * batch_size

    def total(self) -> float:
        return self.device_total.item() if self.device_total is not None else self.host_total


def local_sgd(job: LocalTraining, correction: Correction | None = None) -> LocalResult:
    """Plain SGD over the client's data for ``job.epochs`` epochs."""
    model = job.model
    model.train()
    params = dict(model.named_parameters())
    optimizer = job.optimizer(params.values())
    total = LossSum(next(iter(params.values())).device)
    count, steps = 0, 0
    for _ in range(job.epochs):
        for inputs, labels in job.batches():
            optimizer.zero_grad(set_to_none=True)
            with forward_precision(job.precision, inputs.device):
                loss = F.cross_entropy(model(inputs).float(), labels)
            loss.backward()
            if correction is not None:
                correction(params)
            optimizer.step()
            total.add(loss, len(labels))
            count += len(labels)
            steps += 1
    return LocalResult(total.total() / max(count, 1), steps)
