"""The small interface every FL algorithm is written against.

An algorithm says four things, independent of where it runs (a Ray worker, a test, a plain loop):
what a client keeps locally, how a client trains and what it sends back, how the server combines the
average of what clients sent, and what crosses the wire each way. The federated loop never branches on
the algorithm's name.

Updates travel as ``{"delta": {name: tensor}, ...}``; the loop averages every entry over the round's
clients, weighted by their sample counts, and hands the mean to :meth:`Algorithm.server_update`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from runner.config import AlgorithmConfig
from runner.cost import float_bytes

State = dict[str, Tensor]
Update = dict[str, State]
Batches = Callable[[], Iterator[tuple[Tensor, Tensor]]]


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
    generator: torch.Generator  # the client's own randomness for this round (e.g. FedPAQ rounding)


class Algorithm:
    """FedAvg's behaviour; other algorithms override the parts that differ."""

    name = "fedavg"

    def __init__(self, cfg: AlgorithmConfig) -> None:
        self.cfg = cfg

    # --- what stays where -------------------------------------------------------------------
    def local_names(self, model: nn.Module) -> set[str]:
        """State entries that never leave the client (none for FedAvg)."""
        return set()

    def init_client_state(self, global_state: State) -> State:
        """Per-client tensors the algorithm keeps across rounds (control variates, corrections)."""
        return {}

    def init_server_state(self, global_state: State) -> State:
        return {}

    # --- one round ----------------------------------------------------------------------------
    def broadcast(self, global_state: State, server_state: State) -> dict[str, State]:
        """What the server sends each sampled client."""
        return {"weights": global_state}

    def train_client(self, job: LocalTraining, payload: dict[str, State], client_state: State) -> tuple[Update, float]:
        """Train from the global weights; return the update and the mean training loss."""
        start = global_start(job, payload)
        loss = local_sgd(job, self.gradient_correction(job, payload, client_state, start))
        return {"delta": model_delta(job, start)}, loss

    def gradient_correction(self, job: LocalTraining, payload: dict[str, State], client_state: State,
                            start: State) -> Callable[[dict[str, nn.Parameter]], None] | None:
        """A hook that adjusts gradients before each SGD step (FedProx, SCAFFOLD, FedDyn)."""
        return None

    def server_update(self, global_state: State, server_state: State, mean: Update,
                      num_sampled: int, num_clients: int) -> State:
        """The new global weights from the weighted mean of the clients' updates."""
        return {n: w + mean["delta"][n] if n in mean["delta"] else w for n, w in global_state.items()}

    # --- the wire -------------------------------------------------------------------------------
    def bytes_down(self, global_numels: list[int]) -> int:
        """Bytes the server sends one sampled client."""
        return float_bytes(global_numels)

    def bytes_up(self, global_numels: list[int]) -> int:
        """Bytes one sampled client sends the server."""
        return float_bytes(global_numels)


def global_start(job: LocalTraining, payload: dict[str, State]) -> State:
    """The broadcast weights a client starts from, for the parameters the server owns."""
    return {n: payload["weights"][n] for n in job.global_names}


def with_gradients(params: dict[str, nn.Parameter], names: Iterable[str]) -> Iterator[tuple[str, nn.Parameter]]:
    """(name, parameter) for each of ``names`` that is a parameter with a gradient this step (buffers and
    unused parameters have none): what a gradient correction adjusts."""
    for n in names:
        p = params.get(n)
        if p is not None and p.grad is not None:
            yield n, p


def zeros_like_state(state: State) -> State:
    """A zero per entry: where control variates, corrections and moment estimates start."""
    return {n: torch.zeros_like(w) for n, w in state.items()}


def local_sgd(job: LocalTraining, correction: Callable[[dict[str, nn.Parameter]], None] | None = None) -> float:
    """Plain SGD over the client's data for ``job.epochs`` epochs; returns the sample-weighted mean loss."""
    model = job.model
    model.train()
    params = dict(model.named_parameters())
    optimiser = torch.optim.SGD(params.values(), lr=job.lr, momentum=job.momentum, weight_decay=job.weight_decay)
    total, count = 0.0, 0
    for _ in range(job.epochs):
        for inputs, labels in job.batches():
            optimiser.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(inputs), labels)
            loss.backward()
            if correction is not None:
                correction(params)
            optimiser.step()
            total += loss.item() * len(labels)
            count += len(labels)
    return total / max(count, 1)


def model_delta(job: LocalTraining, start: State) -> State:
    """Trained minus starting weights, for the parameters the server owns."""
    state = job.model.state_dict()
    return {n: state[n].detach() - start[n] for n in job.global_names}
