"""Driver: the Ray actor that owns the global model and runs rounds over the client workers.

Each round it samples clients (seeded by round, so a resumed run samples the same ones), plans which
worker trains which of them so that workers finish together (moving a client's state when it changes
worker), puts the broadcast payload into the object store once, adds the workers' pre-reduced weighted
sums, and applies the algorithm's server step. It counts the bytes that cross the wire and, when the
trial asks, checkpoints everything needed to continue (the clients' states as pieces that hold only what
changed: runner/engine/client_state_pieces.py). It also plans the next round ahead, so each worker keeps
the states of the clients it trains next in memory and no others (runner/engine/client_state_store.py).
When a worker fails, runner/engine/recovery.py restores the trial from that checkpoint and the step is redone.

A round whose training loss or any global weight is not finite ends the trial: its row says what diverged
(``diverged``), it is not evaluated, and no later round runs (a diverged model never comes back, and a
sweep's GPUs are better spent on its other trials). The checkpoint after it remembers, so a resume does not
run it again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import ray
import torch

from models import count_parameters, original_parameter_count
from partitions import DATASETS
from runner.algorithms import Participation
from runner.config import TrialConfig
from runner.engine.aggregation import WeightedSum
from runner.engine.allocator import reuse_freed_memory
from runner.engine.checkpoint import FALLING_BACK, CheckpointFile
from runner.engine.client_state_pieces import Run, add_checkpoint
from runner.engine.model import initial_model
from runner.engine.planning import client_cost, plan_round
from runner.engine.recovery import retrying
from runner.engine.seeding import round_clients
from runner.engine.storage import DamagedFile
from runner.engine.wire import to_wire
from runner.engine.worker_pool import WorkerPool

log = logging.getLogger(__name__)


class Driver:
    def __init__(self, cfg: TrialConfig, checkpoint_dir: str) -> None:
        torch.set_num_threads(1)
        reuse_freed_memory()
        self.cfg = cfg
        self.checkpoint = CheckpointFile(checkpoint_dir)
        self.algorithm = cfg.algorithm.build()
        model, self.initial_global, self.initial_local = initial_model(cfg, self.algorithm)
        numels = [t.numel() for t in self.initial_global.values()]  # what one copy of the model sends
        self.bytes_down = self.algorithm.bytes_down(numels)
        self.bytes_up = self.algorithm.bytes_up(numels, cfg.upload)
        info = DATASETS[cfg.data.dataset]
        original = original_parameter_count(cfg.model.arch, info.num_classes, info.input_shape)
        self.client_runs: list[Run] = []  # the pieces of the clients' states (restore sets them)
        self.constants: dict[str, float] = {"num_parameters": count_parameters(model), "params_sent": sum(numels),
                                            "original_parameters": original}
        self.constants["param_ratio"] = self.constants["num_parameters"] / self.constants["original_parameters"]

        self.pool = WorkerPool(cfg, ray.util.get_current_placement_group())
        self.pool.setup(self.initial_local, self.initial_global)
        t = cfg.train
        self.sizes = ray.get(self.pool.workers[0].client_sizes.remote())  # training samples: every average's weights
        self.total_samples = sum(self.sizes)
        self.costs = [client_cost(n, t.batch_size, t.local_epochs) for n in self.sizes]
        self.stateful = bool(self.initial_local or self.algorithm.init_client_state(self.initial_global))
        self.restore_newest()

    def facts(self) -> dict[str, Any]:
        """Per-trial constants that go into every result row."""
        return dict(self.constants)

    def resume_point(self) -> dict[str, Any]:
        """Where the trial continues: the round it resumes after (0: a fresh start), whether it diverged there
        (it then runs no further), and what its sinks kept with the checkpoint."""
        return {"round": self.round, "diverged": self.diverged, "sinks": self.sink_states}

    # --- the trial's steps (each redone after restoring when a worker fails) ----------------------------
    def run_rounds(self, last: int) -> Iterator[dict[str, Any]]:
        """Run the rounds up to ``last`` back to back, yielding each row when it is ready (called remotely,
        a Ray generator: the caller receives each row while the next round runs)."""
        while self.round < last and self.diverged is None:
            yield retrying(lambda: self._round(evaluate=True), self, "training")

    def save_checkpoint(self, sink_states: dict[str, Any] | None = None) -> dict[str, int]:
        """Write the trial state, with what the trial's sinks keep (the trial calls this after the round's row is
        on disk): the clients' states changed since the last checkpoint as pieces, then the checkpoint that lists
        them. Returns the clients written and the bytes of pieces written (deltas, merges)."""
        self.sink_states: dict[str, Any] = dict(sink_states or {})
        return retrying(self._save, self, "checkpointing")

    def _save(self) -> dict[str, int]:
        written = {"clients": 0, "delta_bytes": 0, "merge_bytes": 0}
        if self.stateful:
            directory = self.checkpoint.pieces
            deltas = []
            for name, clients, size in self.pool.save_client_states(str(directory), self.round):
                if name is not None:
                    deltas.append(name)
                    written["clients"] += clients
                    written["delta_bytes"] += size
            runs, written["merge_bytes"] = add_checkpoint(directory, self.client_runs, deltas, self.round,
                                                          self.cfg.logging.checkpoint_runs)
            self.client_runs = runs
        self.checkpoint.save(self.snapshot())
        return written

    def close(self) -> None:
        """Let every worker delete its local copies of the clients' states (the trial is over)."""
        ray.get([w.close_store.remote() for w in self.pool.workers])

    # --- state --------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"round": self.round, "global": self.global_state, "server": self.server_state,
                "client_runs": self.client_runs,  # the pieces that hold the clients' states
                "cumulative_bytes": self.cumulative_bytes,
                "elapsed": self.elapsed, "trial": self.cfg.trial_name, "diverged": self.diverged,
                "sinks": self.sink_states}

    def restore(self, state: dict[str, Any] | None) -> None:
        """Continue from a checkpoint's state, or from the start when there is none; every worker gets the
        states of its home clients."""
        self.diverged: str | None = None if state is None else state.get("diverged")
        self.sink_states = {} if state is None else state.get("sinks", {})
        if state is None:
            self.round, self.cumulative_bytes, self.elapsed = 0, 0, 0.0
            self.global_state = {n: t.clone() for n, t in self.initial_global.items()}
            self.server_state = self.algorithm.init_server_state(self.global_state)
        else:
            self.round, self.elapsed = state["round"], state["elapsed"]
            self.cumulative_bytes = state["cumulative_bytes"]
            self.global_state, self.server_state = state["global"], state["server"]
        self.client_runs = [] if state is None else state.get("client_runs", [])
        if state is not None and "clients" in state:  # written before pieces: all states in the checkpoint
            self.pool.load_client_states(to_wire(state["clients"]))
        else:
            self.pool.load_client_pieces(str(self.checkpoint.pieces), self.client_runs)

    def restore_newest(self) -> None:
        """Continue from the newest checkpoint whose file and clients' state pieces read back whole: a damaged
        piece, as a damaged checkpoint file, is reported by name and the checkpoint before it used (its pieces
        are kept until a newer checkpoint is whole); from the start when none is."""
        for state in self.checkpoint.whole():
            try:
                self.restore(state)
                return
            except DamagedFile as error:  # raised in a worker reading a piece: Ray re-raises it as this type
                log.warning("%s; %s", error, FALLING_BACK)
        self.restore(None)

    def replay_round(self) -> None:
        """Redo the next round as it ran before (recovery): same clients, same updates, no evaluation."""
        self._round(evaluate=False)

    # --- one round ----------------------------------------------------------------------------------
    def _round(self, evaluate: bool) -> dict[str, Any]:
        started = time.perf_counter()
        cfg, index = self.cfg, self.round + 1
        lr = cfg.train.lr * cfg.train.lr_decay ** (index - 1)
        sampled = round_clients(cfg, index)
        total, peak_memory, worker_seconds = self._train(index, sampled, lr)
        participation = Participation(sum(self.sizes[k] for k in sampled), self.total_samples)
        self.global_state = self.algorithm.server_update(self.global_state, self.server_state, total.mean(),
                                                         participation)
        self.round = index
        down, up = len(sampled) * self.bytes_down, len(sampled) * self.bytes_up
        self.cumulative_bytes += down + up
        row: dict[str, Any] = {
            "round": index, "lr": lr, "train_loss": total.mean_loss, "clients": len(sampled),
            "bytes_down": down, "bytes_up": up, "bytes_round": down + up, "cumulative_bytes": self.cumulative_bytes,
            "test_accuracy": math.nan, "test_loss": math.nan, "test_accuracy_client_mean": math.nan,
            "val_accuracy": math.nan, "val_loss": math.nan,
            "worker_peak_mib": peak_memory,
            "worker_seconds": worker_seconds}
        self.diverged = non_finite(total.mean_loss, self.global_state)
        if self.diverged is not None:
            row["diverged"] = self.diverged  # and no evaluation: a model with NaN weights has no accuracy
        elif evaluate and (index % cfg.train.eval_every == 0 or index == cfg.train.rounds):
            row.update(self.evaluate())
        row["round_seconds"] = time.perf_counter() - started
        self.elapsed += row["round_seconds"]
        row["elapsed_seconds"] = self.elapsed
        return row

    def _train(self, index: int, sampled: list[int], lr: float) -> tuple[WeightedSum, float, float]:
        """Train the sampled clients on the workers; returns the sum of their updates, the busiest worker's
        peak memory and the slowest worker's seconds."""
        payload = ray.put(to_wire(self.algorithm.broadcast(self.global_state, self.server_state)))
        plan = plan_round(sampled, self.costs, self.pool.holders, len(self.pool))
        upcoming = self._next_plan(index, plan)
        arrivals, handed = self.pool.move_states(plan) if self.stateful else ({}, [])
        calls = {i: self.pool.workers[i].train.remote(index, clients, upcoming[i], payload, lr,
                                                      *arrivals.get(i, []))
                 for i, clients in enumerate(plan) if clients}
        total, peak_memory, slowest = WeightedSum(), 0.0, 0.0
        for partial, worker_peak, seconds in self.pool.as_ready(calls):
            total.merge(partial)  # as workers finish: the sum does not depend on the order
            peak_memory, slowest = max(peak_memory, worker_peak), max(slowest, seconds)
        self.pool.check_handovers(handed)
        self.pool.record_plan(plan)
        return total, peak_memory, slowest

    def _next_plan(self, index: int, plan: list[list[int]]) -> list[list[int]]:
        """The plan of the round after ``index`` (sampling and planning are deterministic): what each worker
        keeps in memory with this round's clients. Empty after the last round."""
        workers = len(self.pool)
        if not self.stateful or index >= self.cfg.train.rounds:
            return [[] for _ in range(workers)]
        return plan_round(round_clients(self.cfg, index + 1), self.costs, self.pool.holders_after(plan), workers)

    def evaluate(self) -> dict[str, float]:
        """Global test accuracy, or per-client accuracy on each client's own data (personalized methods)."""
        weights = ray.put(to_wire(self.algorithm.evaluated_model(self.global_state, self.server_state)))
        workers = self.pool.workers
        if self.cfg.personalized:
            calls = {i: w.evaluate_personal.remote(weights, self.pool.held_by(i, self.cfg.data.num_clients))
                     for i, w in enumerate(workers)}
        else:
            calls = {i: w.evaluate_global.remote(weights) for i, w in enumerate(workers)}
        merged: dict[str, dict[int, tuple[float, int, int]]] = {"test": {}, "validation": {}}
        for part in self.pool.gather(calls):
            for split, scores in part.items():
                merged[split].update(scores)
        columns = accuracy_columns(merged["test"], per_client=self.cfg.personalized)
        if self.cfg.data.validation_fraction > 0:
            validation = accuracy_columns(merged["validation"], per_client=False)  # pooled over the held-out samples
            columns.update(val_accuracy=validation["test_accuracy"], val_loss=validation["test_loss"])
        return columns


def accuracy_columns(scores: dict[int, tuple[float, int, int]], per_client: bool) -> dict[str, float]:
    """A round's test columns from (loss sum, correct, count) per global test batch, or per client.

    ``test_accuracy`` and ``test_loss`` pool the samples: Σ correct / Σ count, so a client counts by its number of
    test samples. A personalized trial's rows also carry ``test_accuracy_client_mean``, the unweighted mean over
    clients of each client's own accuracy (every client has test samples: partitions refuses a split where one
    has none). Sums run in a fixed order, so the numbers do not depend on which worker scored what.
    """
    keys = sorted(scores)
    count = sum(scores[k][2] for k in keys)
    columns = {"test_accuracy": sum(scores[k][1] for k in keys) / max(count, 1),
               "test_loss": sum(scores[k][0] for k in keys) / max(count, 1),
               "test_accuracy_client_mean": math.nan}
    if per_client:
        empty = [k for k in keys if scores[k][2] == 0]
        if empty:
            raise ValueError(f"clients {empty} have no test samples: their accuracy is undefined")
        columns["test_accuracy_client_mean"] = sum(scores[k][1] / scores[k][2] for k in keys) / len(keys)
    return columns


def non_finite(train_loss: float, global_state: dict[str, torch.Tensor]) -> str | None:
    """What is not finite after a round (the training loss, else the first global weight), or None."""
    if not math.isfinite(train_loss):
        return f"train_loss {train_loss}"
    for name, tensor in global_state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return f"global weight {name} not finite"
    return None
