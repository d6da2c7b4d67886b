"""The trial's client workers as the Driver sees them: the actors, whether each is still the incarnation
the Driver set up, and which worker holds each client's persistent state.

Ray restarts a worker that dies (``max_restarts``), but a restarted worker has lost its clients' state.
Every reply that reads client state therefore carries the worker's incarnation token, and a reply from
an incarnation the Driver did not set up raises :class:`WorkerRestarted` (runner/engine/recovery.py
then restores the trial from its checkpoint).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from runner.config import TrialConfig
from runner.engine.client_worker import ClientWorker
from runner.engine.layout import TrialLayout
from runner.engine.planning import home_worker

WORKER_RESTARTS = 3  # Ray restarts a dead worker this often; the Driver redoes a round this often
RESTART_WAIT_S = 300  # how long a restarting worker may take to accept calls again


class WorkerRestarted(RuntimeError):
    """A worker came back from a restart between calls: its clients' state is gone."""


class WorkerPool:
    def __init__(self, cfg: TrialConfig, placement_group: Any) -> None:
        r = cfg.resources
        actor = ray.remote(ClientWorker)
        self.workers: list[Any] = [  # actor handles
            actor.options(num_cpus=r.cpus_per_worker, num_gpus=r.gpus_per_worker, max_restarts=WORKER_RESTARTS,
                          max_task_retries=0, name=f"{cfg.trial_name}/worker-{i}",
                          **_in_bundle(placement_group, TrialLayout.worker_bundle(i)))
            .remote(cfg, i, r.num_workers)
            for i in range(r.num_workers)]
        self.incarnations: list[str] = []
        self.holders: dict[int, int] = {}  # clients whose state moved away from their home worker

    def __len__(self) -> int:
        return len(self.workers)

    def setup(self, initial_local: Any, initial_global: Any, wait_s: float = 0.0) -> None:
        """Hand every worker the initial tensors and note its incarnation; waits up to ``wait_s`` for
        workers that are restarting (they refuse calls until they are back)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self.incarnations = ray.get([w.setup.remote(initial_local, initial_global) for w in self.workers])
                return
            except ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    # --- where client state lives -----------------------------------------------------------------
    def holder(self, client: int) -> int:
        return self.holders.get(client, home_worker(client, len(self.workers)))

    def held_by(self, worker: int, num_clients: int) -> list[int]:
        return [k for k in range(num_clients) if self.holder(k) == worker]

    def record_plan(self, plan: list[list[int]]) -> None:
        """After a round: each client's state now lives where it trained."""
        for worker, clients in enumerate(plan):
            for k in clients:
                if home_worker(k, len(self.workers)) == worker:
                    self.holders.pop(k, None)
                else:
                    self.holders[k] = worker

    def move_states(self, plan: list[list[int]]) -> tuple[dict[int, list[Any]], list[tuple[int, Any]]]:
        """Ask the holders of clients that train elsewhere this round to hand their states over.

        Returns, per receiving worker, the refs of the states it gets, and (giver, ref of its incarnation)
        pairs for :meth:`check_handovers`. A giver runs ``hand_over`` before its own ``train``: an actor
        runs one caller's calls in the order they were made.
        """
        arrivals: dict[int, list[Any]] = {i: [] for i in range(len(plan))}
        handed: list[tuple[int, Any]] = []
        moves: dict[tuple[int, int], list[int]] = {}
        for receiver, clients in enumerate(plan):
            for k in clients:
                if self.holder(k) != receiver:
                    moves.setdefault((self.holder(k), receiver), []).append(k)
        for (giver, receiver), clients in sorted(moves.items()):
            incarnation, states = self.workers[giver].hand_over.options(num_returns=2).remote(clients)
            arrivals[receiver].append(states)
            handed.append((giver, incarnation))
        return arrivals, handed

    def check_handovers(self, handed: list[tuple[int, Any]]) -> None:
        """A giver restarted before handing over had lost those states: the round must be redone."""
        self._check(list(zip((giver for giver, _ in handed), ray.get([ref for _, ref in handed]))))

    # --- calls that read client state ---------------------------------------------------------------
    def gather(self, calls: dict[int, Any]) -> list[Any]:
        """Results of per-worker calls that reply (incarnation, result)."""
        replies = ray.get(list(calls.values()))
        self._check(list(zip(calls, (incarnation for incarnation, _ in replies))))
        return [result for _, result in replies]

    def as_ready(self, calls: dict[int, Any]) -> Iterator[Any]:
        """Like :meth:`gather`, but yields each worker's result as soon as it is ready."""
        worker_of = {ref: i for i, ref in calls.items()}
        pending = list(calls.values())
        while pending:
            [ready], pending = ray.wait(pending, num_returns=1)
            incarnation, result = ray.get(ready)
            self._check([(worker_of[ready], incarnation)])
            yield result

    def holders_after(self, plan: list[list[int]]) -> dict[int, int]:
        """:attr:`holders` as :meth:`record_plan` will leave them after this plan (to plan the next round)."""
        holders = dict(self.holders)
        for worker, clients in enumerate(plan):
            for k in clients:
                if home_worker(k, len(self.workers)) == worker:
                    holders.pop(k, None)
                else:
                    holders[k] = worker
        return holders

    def save_client_states(self, directory: str, round_: int) -> list[tuple[str | None, int, int]]:
        """Every worker writes the states it changed since the last checkpoint as one piece: (name or None,
        clients, bytes) per worker."""
        return self.gather({i: w.save_client_states.remote(directory, round_) for i, w in enumerate(self.workers)})

    def load_client_pieces(self, directory: str, runs: list[Any]) -> None:
        """Every worker reads the states of its home clients from a checkpoint's pieces (and drops all others)."""
        ray.get([w.load_client_pieces.remote(directory, runs) for w in self.workers])
        self.holders = {}

    def load_client_states(self, states: dict[int, Any]) -> None:
        """Give every worker the states of its home clients (and drop all others), from a checkpoint written
        before pieces."""
        shared = ray.put(states)
        ray.get([w.load_client_states.remote(shared) for w in self.workers])
        self.holders = {}

    def _check(self, seen: list[tuple[int, str]]) -> None:
        restarted = sorted({i for i, incarnation in seen if incarnation != self.incarnations[i]})
        if restarted:
            raise WorkerRestarted(f"client workers {restarted} were restarted")


def _in_bundle(pg: Any, bundle: int) -> dict[str, Any]:
    if pg is None:
        return {}
    return {"scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=bundle)}
