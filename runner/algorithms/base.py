"""The small interface every FL algorithm is written against.

An algorithm says, independent of where it runs (a Ray worker, a test, a plain loop): its name and the
settings it reads (its own ``Settings`` dataclass: a setting it does not read cannot be set, so it cannot
change a trial's identity); whether it is personalized (scored per client on the client's own data);
what a client keeps locally; what the server sends and what a client sends back; how a client trains;
and how the server combines the average of what clients sent. The federated loop never branches on the
algorithm's name.

Updates travel as ``{"delta": {name: tensor}, ...}`` (one entry per name in :attr:`Algorithm.sent_up`);
the loop averages every entry over the round's clients, weighted by their sample counts, and hands the
mean to :meth:`Algorithm.server_update` with the round's :class:`Participation`.

One weighting throughout: a client counts by its number of training samples n_k, in the model average and in
the server state that stands for all clients (SCAFFOLD's c, FedDyn's h), which is kept equal to
Σ_k (n_k/n)·state_k over all N clients (n = Σ_k n_k, sampled this round or not). A round's sampled clients S then
move it by Σ_{k∈S} (n_k/n)·Δstate_k = (n_S/n)·mean_S(Δstate), :attr:`Participation.share` times the weighted mean
the loop hands over. With equal n_k (an IID split of n = N·n_k samples) this is the SCAFFOLD and FedDyn papers'
uniform 1/N average, and n_S/n equals |S|/N.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from models import float_bytes
from runner.algorithms.settings import NoSettings
from runner.algorithms.training import Correction, LocalTraining, local_sgd
from runner.algorithms.upload import Upload

State = dict[str, Tensor]
Update = dict[str, Mapping[str, Tensor]]  # what a client sends: an entry may be a Difference, read when used
Mean = dict[str, State]  # the weighted mean of the clients' updates, entry by entry


@dataclass(frozen=True)
class Participation:
    """Who trained this round, in the weight every average uses: training samples."""

    sampled_samples: int  # n_S: the training samples of the round's clients
    total_samples: int  # n: the training samples of all clients

    @property
    def share(self) -> float:
        """n_S/n: what a weighted mean over the round's clients counts for in an average over all clients."""
        return self.sampled_samples / self.total_samples


class Algorithm:
    """FedAvg's behavior; other algorithms override the parts that differ."""

    name: ClassVar[str] = "fedavg"
    Settings: ClassVar[type] = NoSettings
    personalized: ClassVar[bool] = False  # scored per client on its own held-out data
    requires_parameterization: ClassVar[str | None] = None  # the model.parameterization it needs, if any
    sent_down: ClassVar[tuple[str, ...]] = ("weights",)  # what the server sends each sampled client
    sent_up: ClassVar[tuple[str, ...]] = ("delta",)  # what each client sends back: the update's entries

    def __init__(self, settings: Any = None) -> None:
        self.settings = self.Settings() if settings is None else settings

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
        """What the server sends each sampled client: one entry per name in :attr:`sent_down`."""
        return {"weights": global_state}

    def train_client(self, job: LocalTraining, payload: dict[str, State], client_state: State) -> tuple[Update, float]:
        """Train from the global weights; return the update and the mean training loss."""
        start = global_start(job, payload)
        result = local_sgd(job, self.gradient_correction(job, payload, client_state, start))
        return {"delta": Difference(job.model.state_dict(), start, job.global_names)}, result.loss

    def gradient_correction(self, job: LocalTraining, payload: dict[str, State], client_state: State,
                            start: State) -> Correction | None:
        """A hook that adjusts gradients before each SGD step (FedProx, SCAFFOLD, FedDyn)."""
        return None

    def server_update(self, global_state: State, server_state: State, mean: Mean,
                      participation: Participation) -> State:
        """The new global weights from the weighted mean of the clients' updates."""
        return {n: w + mean["delta"][n] if n in mean["delta"] else w for n, w in global_state.items()}

    def evaluated_model(self, global_state: State, server_state: State) -> State:
        """The global model whose accuracy a round reports: the one the server sends (FedDyn's differs)."""
        return global_state

    # --- the wire -------------------------------------------------------------------------------
    def bytes_down(self, global_numels: list[int]) -> int:
        """Bytes the server sends one sampled client: each entry is one copy of the model's global part."""
        return len(self.sent_down) * float_bytes(global_numels)

    def bytes_up(self, global_numels: list[int], upload: Upload) -> int:
        """Bytes one sampled client sends the server: each entry of its update, as the upload encodes it."""
        return len(self.sent_up) * upload.bytes(global_numels)


def global_start(job: LocalTraining, payload: dict[str, State]) -> State:
    """The broadcast weights a client starts from, for the parameters the server owns."""
    return {n: payload["weights"][n] for n in job.global_names}


def with_gradients(params: dict[str, nn.Parameter],
                   names: Iterable[str]) -> Iterator[tuple[str, nn.Parameter, Tensor]]:
    """(name, parameter, its gradient) for each of ``names`` that is a parameter with a gradient this step
    (buffers and unused parameters have none): what a gradient correction adjusts."""
    for n in names:
        p = params.get(n)
        if p is not None and p.grad is not None:
            yield n, p, p.grad


def zeros_like_state(state: State) -> State:
    """A zero per entry: where control variates, corrections and moment estimates start."""
    return {n: torch.zeros_like(w) for n, w in state.items()}


def model_delta(job: LocalTraining, start: State) -> State:
    """Trained minus starting weights, for the parameters the server owns."""
    return dict(Difference(job.model.state_dict(), start, job.global_names))


class Difference(Mapping[str, Tensor]):
    """``a[n] − b[n]`` for each name, computed when read: a model's trained minus its starting weights.

    The worker's exact sum (runner/engine/aggregation.py) forms each difference inside its cache-sized
    blocks rather than in new tensors; anything else reads it like a dict of tensors. It reads ``a``
    when read, so it must be used before the model trains again (the worker adds it to its sum at once).
    """

    def __init__(self, a: Mapping[str, Tensor], b: Mapping[str, Tensor], names: tuple[str, ...]) -> None:
        self.a, self.b, self.names = a, b, names

    def __getitem__(self, name: str) -> Tensor:
        if name not in self.names:
            raise KeyError(name)
        return self.a[name].detach() - self.b[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def pairs(self) -> Iterator[tuple[str, Tensor, Tensor]]:
        """(name, a, b) for each name, without computing anything."""
        for n in self.names:
            yield n, self.a[n].detach(), self.b[n]
