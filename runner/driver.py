"""Driver: the Ray actor that owns the global model and runs rounds over the client workers.

Each round it samples clients (seeded by round, so a resumed run samples the same ones), plans which
worker trains which of them so that workers finish together (moving a client's state when it changes
worker), puts the broadcast payload into the object store once, adds the workers' pre-reduced
weighted sums, and applies the algorithm's server step. It counts the
bytes that cross the wire and, every ``checkpoint_every`` rounds, writes everything needed to continue:
the global model, the server optimiser's state, every client's persistent state and the round.

If a worker dies mid-round, Ray restarts it; the driver then reloads the last checkpoint into every
actor and replays the rounds since (training is deterministic), so the round is redone and the rows
already recorded stay valid.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Iterator

import ray
import torch
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from models import count_parameters, original_parameter_count
from partitions import DATASETS
from runner.aggregation import WeightedSum
from runner.algorithms import build_algorithm
from runner.allocator import reuse_freed_memory
from runner.balance import client_cost, plan_round
from runner.client_worker import ClientWorker, model_for
from runner.config import TrialConfig
from runner.seeding import sample_clients
from runner.wire import to_wire

log = logging.getLogger(__name__)
WORKER_RESTARTS = 3
RESTART_WAIT_S = 300
WORKER_FAILURES = (RayActorError, ActorUnavailableError)


class WorkerRestarted(RuntimeError):
    """A worker came back from a restart between calls: its clients' state is gone."""


def _placement(pg: Any, bundle: int | None) -> dict[str, Any]:
    if pg is None:
        return {}
    return {"scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=bundle)}


class Driver:
    def __init__(self, cfg: TrialConfig, checkpoint_path: str, first_worker_bundle: int | None = None) -> None:
        torch.set_num_threads(1)
        reuse_freed_memory()
        self.cfg = cfg
        self.checkpoint_path = Path(checkpoint_path)
        info = DATASETS[cfg.data.dataset]
        torch.manual_seed(cfg.seed)
        model = model_for(cfg, info.num_classes, info.input_shape)
        self.algorithm = build_algorithm(cfg.algorithm)
        local = self.algorithm.local_names(model)
        state = {n: t.detach().clone() for n, t in model.state_dict().items()}
        self.initial_global = {n: t for n, t in state.items() if n not in local}
        self.initial_local = {n: t for n, t in state.items() if n in local}
        self.global_numels = [t.numel() for t in self.initial_global.values()]  # what one copy of the model sends
        self.num_parameters = count_parameters(model)
        self.original_parameters = original_parameter_count(cfg.model.arch, info.num_classes, info.input_shape)

        pg = ray.util.get_current_placement_group()
        r = cfg.resources
        actor = ray.remote(ClientWorker)
        self.workers = [
            actor.options(num_cpus=r.cpus_per_worker, num_gpus=r.gpus_per_worker, max_restarts=WORKER_RESTARTS,
                          max_task_retries=0, name=f"{cfg.trial_name}/worker-{i}",
                          **_placement(pg, None if first_worker_bundle is None else first_worker_bundle + i))
            .remote(cfg, i, r.num_workers)
            for i in range(r.num_workers)]
        self.incarnations: list[str] = []
        self._setup_workers()
        t = cfg.train
        self.costs = [client_cost(n, t.batch_size, t.local_epochs) for n in ray.get(self.workers[0].client_sizes.remote())]
        self.stateful = bool(self.initial_local or self.algorithm.init_client_state(self.initial_global))
        self._reset()
        if self.checkpoint_path.exists():
            self._load_checkpoint()

    # --- state ------------------------------------------------------------------------------------
    def _reset(self) -> None:
        self.round = 0
        # clients whose state moved away from worker k mod num_workers (a checkpoint loads back there)
        self.holders: dict[int, int] = {}
        self.global_state = {n: t.clone() for n, t in self.initial_global.items()}
        self.server_state = self.algorithm.init_server_state(self.global_state)
        self.cumulative_bytes = 0
        self.elapsed = 0.0

    def _setup_workers(self) -> None:
        self.incarnations = ray.get([w.setup.remote(self.initial_local, self.initial_global) for w in self.workers])

    def facts(self) -> dict[str, Any]:
        """Per-trial constants that go into every result row."""
        return {"num_parameters": self.num_parameters, "original_parameters": self.original_parameters,
                "param_ratio": self.num_parameters / self.original_parameters,
                "params_sent": sum(self.global_numels), "round": self.round}

    # --- one round ----------------------------------------------------------------------------------
    def run_round(self) -> dict[str, Any]:
        """Run the next round (redoing it after a worker failure); returns its metrics row."""
        for attempt in range(WORKER_RESTARTS + 1):
            try:
                return self._round(evaluate=True)
            except (*WORKER_FAILURES, WorkerRestarted) as error:
                if attempt == WORKER_RESTARTS:
                    raise
                log.warning("a client worker died in round %d (%s); restoring and redoing it", self.round + 1, error)
                self._recover()
        raise AssertionError("unreachable")

    def _round(self, evaluate: bool) -> dict[str, Any]:
        started = time.perf_counter()
        cfg, index = self.cfg, self.round + 1
        lr = cfg.train.lr * cfg.train.lr_decay ** (index - 1)
        sampled = sample_clients(cfg.seed, index, cfg.data.num_clients, cfg.data.clients_per_round)
        total, peak_memory = self._train(index, sampled, lr)
        self.global_state = self.algorithm.server_update(self.global_state, self.server_state, total.mean(),
                                                         len(sampled), cfg.data.num_clients)
        self.round = index
        down = len(sampled) * self.algorithm.bytes_down(self.global_numels)
        up = len(sampled) * self.algorithm.bytes_up(self.global_numels)
        self.cumulative_bytes += down + up
        row: dict[str, Any] = {
            "round": index, "lr": lr, "train_loss": total.mean_loss, "clients": len(sampled),
            "bytes_down": down, "bytes_up": up, "bytes_round": down + up, "cumulative_bytes": self.cumulative_bytes,
            "test_accuracy": float("nan"), "test_loss": float("nan"), "worker_peak_mib": peak_memory}
        if evaluate and (index % cfg.train.eval_every == 0 or index == cfg.train.rounds):
            row.update(self.evaluate())
        row["round_seconds"] = time.perf_counter() - started
        self.elapsed += row["round_seconds"]
        row["elapsed_seconds"] = self.elapsed
        return row

    def _train(self, index: int, sampled: list[int], lr: float) -> tuple[WeightedSum, float]:
        """Train the sampled clients on the workers; returns the sum of their updates and the busiest
        worker's peak memory."""
        payload = ray.put(to_wire(self.algorithm.broadcast(self.global_state, self.server_state)))
        plan = plan_round(sampled, self.costs, self.holders, len(self.workers))
        arrivals, handed = self._move_states(plan)
        calls = {i: self.workers[i].train.remote(index, clients, payload, lr, *arrivals[i])
                 for i, clients in enumerate(plan) if clients}
        total, peak_memory = WeightedSum(), 0.0
        for partial, worker_peak in self._as_ready(calls):
            total.merge(partial)  # as workers finish: the sum does not depend on the order
            peak_memory = max(peak_memory, worker_peak)
        # a giver restarted before handing over had lost those states: the round must be redone
        self._check_incarnations(list(zip((giver for giver, _ in handed), ray.get([ref for _, ref in handed]))))
        for i, clients in enumerate(plan):
            for k in clients:
                self._set_holder(k, i)
        return total, peak_memory

    def evaluate(self) -> dict[str, float]:
        """Global test accuracy, or per-client accuracy on each client's own data (personalised methods)."""
        weights = ray.put(to_wire(self.global_state))
        if self.cfg.personalised:
            held = [[k for k in range(self.cfg.data.num_clients) if self._holder(k) == i] for i in range(len(self.workers))]
            calls = {i: w.evaluate_personal.remote(weights, held[i]) for i, w in enumerate(self.workers)}
        else:
            calls = {i: w.evaluate_global.remote(weights) for i, w in enumerate(self.workers)}
        merged: dict[int, tuple[float, int, int]] = {}
        for part in self._gather(calls):
            merged.update(part)
        loss = sum(merged[k][0] for k in sorted(merged))
        correct = sum(v[1] for v in merged.values())
        count = sum(v[2] for v in merged.values())
        return {"test_accuracy": correct / max(count, 1), "test_loss": loss / max(count, 1)}

    def _holder(self, client: int) -> int:
        return self.holders.get(client, client % len(self.workers))

    def _set_holder(self, client: int, worker: int) -> None:
        if client % len(self.workers) == worker:
            self.holders.pop(client, None)
        else:
            self.holders[client] = worker

    def _move_states(self, plan: list[list[int]]) -> tuple[dict[int, list[Any]], list[tuple[int, Any]]]:
        """Ask the holders of clients that train elsewhere this round to hand their states over.

        Returns, per receiving worker, the refs of the states it gets, and (giver, ref of its incarnation)
        pairs that the round checks. A giver runs ``hand_over`` before its own ``train``: an actor runs
        one caller's calls in the order they were made. Algorithms that keep nothing per client move nothing.
        """
        arrivals: dict[int, list[Any]] = {i: [] for i in range(len(plan))}
        handed: list[tuple[int, Any]] = []
        if not self.stateful:
            return arrivals, handed
        moves: dict[tuple[int, int], list[int]] = {}
        for receiver, clients in enumerate(plan):
            for k in clients:
                if self._holder(k) != receiver:
                    moves.setdefault((self._holder(k), receiver), []).append(k)
        for (giver, receiver), clients in sorted(moves.items()):
            incarnation, states = self.workers[giver].hand_over.options(num_returns=2).remote(clients)
            arrivals[receiver].append(states)
            handed.append((giver, incarnation))
        return arrivals, handed

    def _gather(self, calls: dict[int, Any]) -> list[Any]:
        """Results of per-worker calls that read client state; a restarted worker's state is gone."""
        replies = ray.get(list(calls.values()))
        self._check_incarnations(list(zip(calls, (incarnation for incarnation, _ in replies))))
        return [result for _, result in replies]

    def _as_ready(self, calls: dict[int, Any]) -> Iterator[Any]:
        """Like :meth:`_gather`, but yields each worker's result as soon as it is ready."""
        worker_of = {ref: i for i, ref in calls.items()}
        pending = list(calls.values())
        while pending:
            [ready], pending = ray.wait(pending, num_returns=1)
            incarnation, result = ray.get(ready)
            self._check_incarnations([(worker_of[ready], incarnation)])
            yield result

    def _check_incarnations(self, seen: list[tuple[int, str]]) -> None:
        restarted = sorted({i for i, incarnation in seen if incarnation != self.incarnations[i]})
        if restarted:
            raise WorkerRestarted(f"client workers {restarted} were restarted")

    # --- checkpoints and recovery ----------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        for attempt in range(WORKER_RESTARTS + 1):
            try:
                return self._save_checkpoint()
            except (*WORKER_FAILURES, WorkerRestarted):
                if attempt == WORKER_RESTARTS:
                    raise
                self._recover()

    def _save_checkpoint(self) -> None:
        """Write the whole trial state atomically (a crash never leaves half a checkpoint).

        The trial calls this after the round's row is on disk, so a checkpoint never runs ahead of the rows.
        """
        clients: dict[int, Any] = {}
        for part in self._gather({i: w.client_states.remote() for i, w in enumerate(self.workers)}):
            clients.update(part)
        state = {"round": self.round, "global": self.global_state, "server": self.server_state,
                 "clients": clients, "cumulative_bytes": self.cumulative_bytes, "elapsed": self.elapsed,
                 "trial": self.cfg.trial_name}
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_path)

    def _load_checkpoint(self) -> None:
        state = torch.load(self.checkpoint_path, weights_only=False)
        self.round = state["round"]
        self.global_state = state["global"]
        self.server_state = state["server"]
        self.cumulative_bytes = state["cumulative_bytes"]
        self.elapsed = state["elapsed"]
        clients = ray.put(state["clients"])
        ray.get([w.load_client_states.remote(clients) for w in self.workers])

    def _recover(self) -> None:
        """After a worker restart: reload every actor from the checkpoint and replay up to the lost round."""
        target = self.round
        deadline = time.monotonic() + RESTART_WAIT_S
        while True:  # a restarting actor refuses calls until it is back
            try:
                self._setup_workers()
                break
            except ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        ray.get([w.load_client_states.remote({}) for w in self.workers])
        self._reset()
        if self.checkpoint_path.exists():
            self._load_checkpoint()
        while self.round < target:
            self._round(evaluate=False)
