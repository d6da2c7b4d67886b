"""A client's local training: plain SGD over its data, with an optional per-step gradient correction.

This is the training loop every algorithm runs (FedProx, SCAFFOLD and FedDyn only adjust gradients
before each step), so what the loop knows (the mean loss, how many steps it took) it reports itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


@dataclass(frozen=True)
class LocalResult:
    """What a client's training loop reports: its sample-weighted mean loss and the SGD steps it took."""

    loss: float
    steps: int


def local_sgd(job: LocalTraining, correction: Correction | None = None) -> LocalResult:
    """Plain SGD over the client's data for ``job.epochs`` epochs."""
    model = job.model
    model.train()
    params = dict(model.named_parameters())
    optimizer = torch.optim.SGD(params.values(), lr=job.lr, momentum=job.momentum, weight_decay=job.weight_decay)
    total, count, steps = 0.0, 0, 0
    for _ in range(job.epochs):
        for inputs, labels in job.batches():
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(inputs), labels)
            loss.backward()
            if correction is not None:
                correction(params)
            optimizer.step()
            total += loss.item() * len(labels)
            count += len(labels)
            steps += 1
    return LocalResult(total / max(count, 1), steps)
