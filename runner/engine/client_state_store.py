"""ClientStateStore: a worker's clients' persistent state, in device memory only while it is needed.

An algorithm's per-client state (SCAFFOLD's c_k, FedDyn's correction, FedPer's head, pFedPara's W2) is needed
only when its client trains. A worker therefore keeps in its device memory the states of the clients it trains
this round and those the deterministic plan gives it next round (:meth:`pin`), and the states of every other
client it holds in one file per client on the node's local disk (runner/engine/tensor_file.py, written to a
temporary name and renamed, so a file is whole or absent). The memory bound is the pinned set: at most this
round's and next round's clients of this worker, whatever the population; the disk holds the clients ever visited.

The disk traffic runs beside training: :meth:`pin` makes this round's clients resident (already read ahead the
round before, normally), then :meth:`move_in_background` writes out the states no longer pinned and reads next
round's in on one thread while this round's clients train (file and tensor copies release the GIL). That thread
touches no state of this round's clients, and every other method waits for it first (:meth:`settle`), so
checkpoints, hand-overs and evaluation see a settled store.

The store also remembers which clients changed since the last checkpoint (:meth:`take_changed`): a checkpoint
writes only those (runner/engine/client_state_pieces.py).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor

from runner.engine import tensor_file

ClientState = dict[str, dict[str, Tensor]]  # {"params": the client's own parameters, "algo": the algorithm's}


class ClientStateStore:
    def __init__(self, device: torch.device, directory: Path, fresh: Callable[[], ClientState]) -> None:
        self.device, self.directory, self.fresh = device, Path(directory), fresh
        self.directory.mkdir(parents=True, exist_ok=True)
        self.resident: dict[int, ClientState] = {}  # in device memory: only pinned clients
        self.on_disk: set[int] = set()  # clients with a file in ``directory``
        self.unsaved: set[int] = set()  # resident clients whose file is missing or older than their state
        self.changed: set[int] = set()  # clients whose state changed since the last checkpoint
        self.pinned: frozenset[int] = frozenset()
        self.now: frozenset[int] = frozenset()  # this round's clients: the background thread never touches them
        self.peak_resident = 0  # the most states ever in device memory at once
        self._lock = threading.Lock()  # guards the dicts and sets while the background thread moves states
        self._mover: ThreadPoolExecutor | None = None
        self._moving: Future | None = None

    def __contains__(self, client: object) -> bool:
        self.settle()
        return client in self.resident or client in self.on_disk

    def __len__(self) -> int:
        self.settle()
        return len(self.resident.keys() | self.on_disk)

    def clients(self) -> list[int]:
        self.settle()
        return sorted(self.resident.keys() | self.on_disk)

    # --- the memory tier ------------------------------------------------------------------------------
    def pin(self, now: Iterable[int], upcoming: Iterable[int] = ()) -> None:
        """Keep in memory the states of this round's clients (``now``) and next round's (``upcoming``) only.
        This round's are made resident here; the others move by :meth:`move_in_background`."""
        self.settle()
        self.now = frozenset(now)
        self.pinned = self.now | frozenset(upcoming)
        for k in sorted(self.now & (self.on_disk - self.resident.keys())):  # normally read ahead the round before
            self._keep_resident(k, self._read_file(k))

    def move_in_background(self) -> None:
        """Write out the states no longer pinned and read next round's in, on a thread, while this round trains."""
        self.settle()
        spill = [k for k in self.resident if k not in self.pinned]
        ahead = sorted((self.pinned - self.now) & (self.on_disk - self.resident.keys()))
        if spill or ahead:
            if self._mover is None:
                self._mover = ThreadPoolExecutor(max_workers=1, thread_name_prefix="client-state")
            self._moving = self._mover.submit(self._move, spill, ahead)

    def settle(self) -> None:
        """Wait for the background moves (raising what they raised)."""
        if self._moving is not None:
            moving, self._moving = self._moving, None
            moving.result()

    def _move(self, spill: list[int], ahead: list[int]) -> None:
        for k in spill:  # first out, then in: memory never holds more than the two rounds' states
            self._spill(k)
        for k in ahead:
            self._keep_resident(k, self._read_file(k))

    def train_state(self, client: int) -> ClientState:
        """The client's state in device memory, for training to change in place (fresh on a first visit).
        Only this round's clients train: the background thread may be moving the others."""
        if client not in self.now:
            raise KeyError(f"client {client} trains but was not pinned for this round")
        if client not in self.resident:
            self._keep_resident(client, self._read_file(client) if client in self.on_disk else self.fresh())
        with self._lock:
            self.unsaved.add(client)
            self.changed.add(client)
        return self.resident[client]

    def read(self, client: int) -> ClientState | None:
        """The client's state without keeping it in memory (evaluation); None for a client never visited."""
        self.settle()
        if client in self.resident:
            return self.resident[client]
        return self._read_file(client) if client in self.on_disk else None

    # --- moving states in and out ---------------------------------------------------------------------
    def put(self, client: int, state: ClientState, changed: bool) -> None:
        """Hold a state that came from elsewhere (another worker, a checkpoint): in memory when pinned, else on
        disk. ``changed``: the next checkpoint must write it (it is not in the checkpoint pieces yet)."""
        self.settle()
        self.discard(client)
        if client in self.pinned:
            self._keep_resident(client, {part: {n: t.to(self.device, copy=True) for n, t in tensors.items()}
                                         for part, tensors in state.items()})
            self.unsaved.add(client)
        else:
            self._write_file(client, state)
        if changed:
            self.changed.add(client)

    def take(self, client: int) -> ClientState | None:
        """Give up a client's state (it trains on another worker from now on); None if never visited here."""
        state = self.read(client)
        self.discard(client)
        return state

    def discard(self, client: int) -> None:
        self.settle()
        self.resident.pop(client, None)
        self.unsaved.discard(client)
        self.changed.discard(client)
        if client in self.on_disk:
            self._file(client).unlink(missing_ok=True)
            self.on_disk.discard(client)

    def take_changed(self) -> dict[int, ClientState]:
        """The states changed since the last call, as CPU tensors (for a checkpoint piece); forgets them. Those on
        disk are memory-mapped, not read: a checkpoint many rounds apart writes more states than memory holds."""
        self.settle()
        changed = {k: _on_cpu(self.resident[k]) if k in self.resident else self._read_file(k, mapped=True)
                   for k in sorted(self.changed)}
        self.changed.clear()
        return changed

    def read_required(self, client: int) -> ClientState:
        state = self.read(client)
        if state is None:
            raise KeyError(f"client {client} has no state here")
        return state

    def clear(self) -> None:
        """Forget every state (a checkpoint is loaded next)."""
        self.settle()
        for k in list(self.on_disk):
            self.discard(k)
        self.resident.clear()
        self.unsaved.clear()
        self.changed.clear()

    def close(self) -> None:
        """Delete the directory (the worker is done with it)."""
        self.settle()
        if self._mover is not None:
            self._mover.shutdown()
            self._mover = None
        shutil.rmtree(self.directory, ignore_errors=True)

    # --- files --------------------------------------------------------------------------------------------
    def _keep_resident(self, client: int, state: ClientState) -> None:
        with self._lock:
            self.resident[client] = state
            self.peak_resident = max(self.peak_resident, len(self.resident))

    def _spill(self, client: int) -> None:
        state = self.resident[client]
        if client in self.unsaved or client not in self.on_disk:
            self._write_file(client, state)
        with self._lock:
            del self.resident[client]  # after its file is whole: a reader finds it in one place or the other
            self.unsaved.discard(client)

    def _file(self, client: int) -> Path:
        return self.directory / f"{client}.pt"

    def _write_file(self, client: int, state: ClientState) -> None:
        path = self._file(client)
        staged = path.with_name(f".{path.name}.tmp")
        with open(staged, "wb") as stream:
            tensor_file.write({client: state}, stream)
        os.replace(staged, path)
        with self._lock:
            self.on_disk.add(client)

    def _read_file(self, client: int, mapped: bool = False) -> ClientState:
        """A spilled state: copied onto the device, or (``mapped``) CPU views of the file's mapped bytes."""
        return tensor_file.read(self._file(client), "cpu" if mapped else self.device, mapped=mapped)[client]


def _on_cpu(state: ClientState) -> ClientState:
    return {part: {n: t.detach().cpu() for n, t in tensors.items()} for part, tensors in state.items()}
