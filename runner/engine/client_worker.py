"""ClientWorker: a Ray actor that hosts many clients on (a fraction of) one device.

A worker loads the dataset once and keeps every client's samples as tensors on its device, so the
driver can give it any client (runner/engine/planning.py plans each round so workers finish together). It keeps
the persistent state (the parameters an algorithm keeps local, control variates, corrections) of the
clients it holds across rounds: at first each client's home worker (runner/engine/planning.py), and a
client given to another worker takes its state along (``hand_over``). Each round a worker trains its share of
the sampled clients one after another on one model instance and returns their updates pre-reduced
into one weighted sum. The states live in a :class:`ClientStateStore` (runner/engine/client_state_store.py):
in device memory only for this round's and next round's clients, on the node's local disk otherwise.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
import weakref
from pathlib import Path

import numpy as np
import ray
import torch
import torch.nn.functional as F
from torch import Tensor

from partitions import DATASETS, hold_out, load_dataset, partition_clients, subsample
from runner.algorithms import LocalTraining, forward_precision
from runner.config import TrialConfig
from runner.engine.accelerator import memory_format_for, peak_memory_mib, use_fast_cuda_kernels
from runner.engine.aggregation import WeightedSum
from runner.engine.allocator import reuse_freed_memory
from runner.engine.client_data import ClientData, Preprocess
from runner.engine.client_state_pieces import Run, delta_name, states_in, write_delta
from runner.engine.client_state_store import ClientStateStore
from runner.engine.model import trial_model
from runner.engine.planning import home_worker
from runner.engine.seeding import client_generator
from runner.engine.storage import Location
from runner.engine.wire import from_wire, to_wire

log = logging.getLogger(__name__)
State = dict[str, Tensor]
EVAL_BATCH = 500


def test_batches(num_test: int) -> list[range]:
    """The global test set in fixed batches; batch b is evaluated by worker b mod num_workers."""
    return [range(s, min(s + EVAL_BATCH, num_test)) for s in range(0, num_test, EVAL_BATCH)]


def state_directory(trial_name: str, index: int, incarnation: str) -> Path:
    """Where a worker spills its clients' states: the node's temporary directory (``TMPDIR``), one folder per
    worker incarnation (a restarted worker starts empty), named with its process id. The folders of this worker's
    earlier incarnations on this node whose process is gone (killed before it could delete its own) are deleted;
    a live one (the same trial name run by another sweep, or another test process) is left alone."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", trial_name)
    root = Path(tempfile.gettempdir()) / "fedpara-client-state"
    for stale in root.glob(f"{glob.escape(safe)}-w{index}-p*-*"):
        owner = re.fullmatch(rf"{re.escape(safe)}-w{index}-p(\d+)-[0-9a-f]+", stale.name)
        if owner is not None and not _alive(int(owner[1])):
            shutil.rmtree(stale, ignore_errors=True)
    return root / f"{safe}-w{index}-p{os.getpid()}-{incarnation[:12]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def assigned_gpu_ids() -> list[str]:
    """The GPU ids Ray gave this process (CUDA_VISIBLE_DEVICES is set to them); none outside Ray."""
    if not ray.is_initialized():
        return []
    return [str(i) for i in ray.get_runtime_context().get_accelerator_ids().get("GPU", [])]


def worker_device(gpus_per_worker: float, name: str, gpu_ids: list[str]) -> torch.device:
    """CUDA when the worker was given a GPU share and CUDA works here; the CPU otherwise, said once."""
    if gpus_per_worker <= 0:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")  # Ray limits CUDA_VISIBLE_DEVICES to gpu_ids, so this is Ray's GPU
    log.warning("%s was given %g GPU (Ray's GPU ids %s) but CUDA is not available in this process: "
                "it trains on the CPU", name, gpus_per_worker, gpu_ids or "none")
    return torch.device("cpu")


class ClientWorker:
    def __init__(self, cfg: TrialConfig, index: int, num_workers: int) -> None:
        reuse_freed_memory()
        torch.set_num_threads(max(1, int(cfg.resources.cpus_per_worker)))
        self.name = f"{cfg.trial_name}/worker-{index}"
        self.gpu_ids = assigned_gpu_ids()
        self.device = worker_device(cfg.resources.gpus_per_worker, self.name, self.gpu_ids)
        use_fast_cuda_kernels(self.device)
        self.cfg = cfg
        d = cfg.data
        dataset = load_dataset(d.dataset, os.path.expanduser(d.root), download=d.download, seed=cfg.seed)
        partition = partition_clients(dataset, d.partition, d.num_clients, alpha=d.alpha,
                                      classes_per_client=d.classes_per_client, seed=cfg.seed,
                                      client_tests=cfg.personalized)
        # validation data: a seeded fraction of each client's training samples, never trained on
        train_parts, val_parts = hold_out(partition.train, d.validation_fraction, seed=cfg.seed)
        # scarce local data: each client trains on a fraction of its samples; its own test samples stay whole
        train_parts = subsample(train_parts, d.client_fraction, seed=cfg.seed)
        dev = self.device
        self.index, self.num_workers = index, num_workers
        # test and validation samples only for the evaluation this trial runs: each client's own, or global batches
        personal = cfg.personalized
        self.clients: list[ClientData] = []
        for train, test, val in zip(train_parts, partition.test, val_parts):
            tr = torch.as_tensor(train)
            te, va = (torch.as_tensor(ix if personal else [], dtype=torch.long) for ix in (test, val))
            self.clients.append(ClientData(dataset.x_train[tr].to(dev), dataset.y_train[tr].to(dev),
                                           dataset.x_test[te].to(dev), dataset.y_test[te].to(dev),
                                           dataset.x_train[va].to(dev), dataset.y_train[va].to(dev)))
        pooled_val = torch.as_tensor(np.concatenate(val_parts), dtype=torch.long)  # every client's, in client order
        self.eval_batches: dict[str, dict[int, tuple[Tensor, Tensor]]] = {"test": {}, "validation": {}}
        if not personal:
            for split, x, y in (("test", dataset.x_test, dataset.y_test),
                                ("validation", dataset.x_train[pooled_val], dataset.y_train[pooled_val])):
                self.eval_batches[split] = {b: (x[r.start:r.stop].to(dev), y[r.start:r.stop].to(dev))
                                            for b, r in enumerate(test_batches(len(y))) if b % num_workers == index}
        self.model = trial_model(cfg).to(dev)
        layout = memory_format_for(self.model, dev)  # the model's weights and its input batches alike
        self.model.to(memory_format=layout)
        augment = cfg.train.augment and DATASETS[d.dataset].augment  # the dataset's record says if crops suit it
        self.train_preprocess = Preprocess.for_dataset(dataset.kind, dataset.mean, dataset.std, augment, dev, layout)
        self.eval_preprocess = Preprocess.for_dataset(dataset.kind, dataset.mean, dataset.std, False, dev, layout)
        self.live = self.model.state_dict()  # the model's own tensors (detached): clients are loaded into them
        t = cfg.train  # one optimizer for all clients (each job resets it: no momentum carried over)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=t.lr, momentum=t.momentum,
                                         weight_decay=t.weight_decay)
        self.algorithm = cfg.algorithm.build()
        local = self.algorithm.local_names(self.model)
        self.global_names = tuple(n for n in self.live if n not in local)
        self.live_global = [self.live[n] for n in self.global_names]  # the model's tensors the broadcast fills
        self.initial_local: State = {}
        self.incarnation = uuid.uuid4().hex  # changes when Ray restarts this actor (and its state is gone)
        self.store = ClientStateStore(self.device, state_directory(cfg.trial_name, index, self.incarnation),
                                      self._fresh_state)
        weakref.finalize(self, self.store.close)

    def __repr__(self) -> str:
        """What Ray's state API shows for this actor (``repr_name``): where it runs."""
        return f"ClientWorker({self.name}, gpu_ids={','.join(self.gpu_ids) or '-'}, device={self.device})"

    # --- setup and state ------------------------------------------------------------------------
    def setup(self, initial_local: State, initial_global: State) -> str:
        """Receive the initial tensors; returns this incarnation (the driver checks it on every stateful reply)."""
        self.initial_local = {n: t.to(self.device) for n, t in initial_local.items()}
        self.initial_global = {n: t.to(self.device) for n, t in initial_global.items()}
        return self.incarnation

    def client_sizes(self) -> list[int]:
        """Every client's number of training samples (the driver plans rounds with them)."""
        return [data.num_samples for data in self.clients]

    def _fresh_state(self) -> dict[str, State]:
        """A client's state before its first round."""
        return {"params": {n: t.clone() for n, t in self.initial_local.items()},
                "algo": self.algorithm.init_client_state(self.initial_global)}

    def save_client_states(self, directory: str, round_: int) -> tuple[str, tuple[str | None, int, int]]:
        """Write the states of the clients this worker trained since the last checkpoint as one delta piece under
        ``directory`` (runner/engine/client_state_pieces.py); returns its name (None: nothing changed), how many
        clients it holds and its bytes."""
        changed = self.store.take_changed()
        if not changed:
            return self.incarnation, (None, 0, 0)
        size = write_delta(Location(directory), round_, self.index, changed)
        return self.incarnation, (delta_name(round_, self.index), len(changed), size)

    def load_client_pieces(self, directory: str, runs: list[Run]) -> None:
        """Take the states of this worker's home clients from a checkpoint's pieces; drop all others."""
        self.store.clear()
        with tempfile.TemporaryDirectory(prefix="client-state-", dir=self.store.directory) as scratch:
            for k, state in states_in(Location(directory), runs, Path(scratch)):
                if home_worker(k, self.num_workers) == self.index:
                    self.store.put(k, state, changed=False)

    def load_client_states(self, states: dict[int, dict[str, State]]) -> None:
        """Take the states of this worker's home clients from a checkpoint written before pieces (all of them
        in it); drop all others. They count as changed: the next checkpoint writes them as pieces."""
        self.store.clear()
        for k, s in states.items():
            if home_worker(k, self.num_workers) == self.index:
                self.store.put(k, from_wire(s), changed=True)

    def store_counts(self) -> dict[str, int]:
        """How many client states this worker holds in memory now, at most so far, may hold (the pinned
        clients), and holds in all."""
        self.store.settle()
        return {"resident": len(self.store.resident), "peak_resident": self.store.peak_resident,
                "pinned": len(self.store.pinned), "held": len(self.store)}

    def close_store(self) -> None:
        """Delete the local copies of the clients' states (the trial is over; its checkpoints keep them)."""
        self.store.close()

    def hand_over(self, clients: list[int]) -> tuple[str, dict[int, dict[str, State]]]:
        """Give up the state of clients that train elsewhere from now on (as arrays, for the object store).

        Called with two return values: the incarnation for the driver, the states for the receiving worker.
        """
        taken = {k: self.store.take(k) for k in clients}
        return self.incarnation, {k: to_wire(state) for k, state in taken.items() if state is not None}

    # --- one round --------------------------------------------------------------------------------
    def train(self, round_index: int, clients: list[int], upcoming: list[int], payload: dict[str, State], lr: float,
              *arrivals: dict[int, dict[str, State]]) -> tuple[str, tuple[WeightedSum, float, float]]:
        """Train the given clients from the broadcast payload; returns their updates as one weighted sum,
        this worker's peak memory so far in MiB (what sizes ``resources.gpus_per_worker``: CUDA memory on a GPU,
        the resident set on a CPU) and the seconds this call took (the rest of a round is the driver's and Ray's).

        ``upcoming`` are the clients the plan gives this worker next round: their states stay in memory with
        this round's. ``arrivals`` are other workers' ``hand_over`` replies: the state of clients that moved here.
        """
        started = time.perf_counter()
        self.store.pin(clients, upcoming)
        for states in arrivals:
            for k, state in states.items():
                self.store.put(k, from_wire(state), changed=True)
        self.store.move_in_background()  # next round's states read in while this round's clients train
        payload = from_wire(payload, self.device)
        t = self.cfg.train
        weights = [payload["weights"][n] for n in self.global_names]
        generator = torch.Generator(device=self.device)  # one, reseeded for each client
        partial = WeightedSum()
        for k in clients:
            data, state = self.clients[k], self.store.train_state(k)
            client_generator(self.cfg.seed, round_index, k, self.device, reuse=generator)
            self._load(weights, state["params"])
            batches = functools.partial(data.epoch, t.batch_size, self.train_preprocess, generator)
            job = LocalTraining(self.model, batches, t.local_epochs, lr, t.momentum, t.weight_decay,
                                self.global_names, generator, t.precision, kept_optimizer=self.optimizer)
            update, loss = self.algorithm.train_client(job, payload, state["algo"])
            update = self.cfg.upload.apply(update, generator)
            partial.add(float(data.num_samples), update, loss)  # reads the update now: before the next client
            self._keep(state["params"])
        return self.incarnation, (partial, peak_memory_mib(self.device), time.perf_counter() - started)

    def _global_weights(self, weights: State) -> list[Tensor]:
        """The broadcast global weights (arrays off the wire) on this device, in ``global_names`` order."""
        on_device = from_wire(weights, self.device)
        return [on_device[n] for n in self.global_names]

    @torch.no_grad()
    def _load(self, weights: list[Tensor], params: State) -> None:
        """Copy the global weights (in ``global_names`` order) and a client's own parameters into the model's
        tensors: what ``load_state_dict`` does, without building a merged dict or walking the modules."""
        if weights:
            torch._foreach_copy_(self.live_global, weights)
        if params:
            torch._foreach_copy_([self.live[n] for n in params], list(params.values()))

    @torch.no_grad()
    def _keep(self, params: State) -> None:
        """Copy the trained local parameters into the client's own tensors (never shared, never shipped live)."""
        if params:
            torch._foreach_copy_(list(params.values()), [self.live[n] for n in params])

    # --- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _score(self, x: Tensor, y: Tensor) -> tuple[float, int, int]:
        if len(y) == 0:
            return 0.0, 0, 0
        inputs = self.eval_preprocess(x)
        with forward_precision(self.cfg.train.precision, inputs.device):
            logits = self.model(inputs).float()
        loss = F.cross_entropy(logits, y, reduction="sum").item()
        return loss, int((logits.argmax(1) == y).sum()), len(y)

    def evaluate_global(self, weights: State) -> tuple[str, dict[str, dict[int, tuple[float, int, int]]]]:
        """(loss sum, correct, count) for each global test batch, and validation batch, this worker holds."""
        self._load(self._global_weights(weights), self.initial_local)
        self.model.eval()
        return self.incarnation, {split: {b: self._score(x, y) for b, (x, y) in batches.items()}
                                  for split, batches in self.eval_batches.items()}

    def evaluate_personal(self, weights: State,
                          clients: list[int]) -> tuple[str, dict[str, dict[int, tuple[float, int, int]]]]:
        """(loss sum, correct, count) of each given client's own model on its own test and validation data.

        The driver passes the clients this worker holds; a client never trained has the initial local part.
        """
        self._load(self._global_weights(weights), {})  # once; each client then brings only its own part
        self.model.eval()
        results: dict[str, dict[int, tuple[float, int, int]]] = {"test": {}, "validation": {}}
        for k in clients:
            state = self.store.read(k)
            self._load([], self.initial_local if state is None else state["params"])
            data = self.clients[k]
            results["test"][k] = self._score(data.x_test, data.y_test)
            results["validation"][k] = self._score(data.x_val, data.y_val)
        return self.incarnation, results
