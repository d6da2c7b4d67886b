"""A trial's resume state: a file per checkpointed round, checked when read back, the previous one kept.

A checkpoint holds everything needed to continue exactly: the round, the global model, the server
optimizer's state, the list of pieces that hold every visited client's persistent state (written beside it,
only what changed since the last checkpoint: runner/engine/client_state_pieces.py), the bytes and seconds so
far, and what the trial's sinks keep with it (its rows so far). The trial writes it only after the round's
row is recorded, so a checkpoint never runs ahead of the rows. It lives under the results
(runner/engine/storage.py: a local or shared path, or cloud storage that every node opens for itself), so a
trial resumed on another node finds it.

Each checkpoint is ``checkpoint-<round>.pt`` with its SHA-256 beside it (storage.write_checked); the one
before it is deleted only once the new one and its checksum are whole. Loading takes the newest checkpoint
that matches its checksum and whose clients' state pieces do: a damaged one (cut short by a full disk,
edited) is reported by name and the trial continues from the one before, its later rounds redone. The results
location may be a shared bucket, so a checkpoint is unpickled with ``weights_only=True``: a file that carries
anything but tensors and plain containers (which could run code on every node that resumes the trial) is
refused by name.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy
import torch

from runner.config import TrialConfig
from runner.engine.client_state_pieces import is_piece, pieces_dir, referenced, states_in
from runner.engine.client_state_store import ClientState
from runner.engine.storage import DamagedFile, Location, delete_checked, read_checked, write_checked
from runner.results_layout import CHECKPOINT_PREFIX, CHECKPOINT_SUFFIX, checkpoint_name, trial_folder

log = logging.getLogger(__name__)
KEPT = 2  # the newest checkpoint and the one before it (used when the newest is damaged)
FALLING_BACK = "the trial continues from the checkpoint before it, redoing the rounds since"
NAME = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+){re.escape(CHECKPOINT_SUFFIX)}$")
LEGACY_NAME = "checkpoint.pt"  # written before checkpoints were checked: loaded (weights only) when no other is
# ... and its clients' states were NumPy arrays: these rebuild an array of a plain dtype (an object array's items
# still go through the weights-only unpickler)
LEGACY_GLOBALS = (numpy.ndarray, numpy.dtype, getattr(numpy, "_core", numpy).multiarray._reconstruct,
                  *(type(numpy.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "uint8", "bool")))


def trial_dir(cfg: TrialConfig) -> Location:
    """A trial's own directory under its results: its checkpoints, the config it ran with, its W&B run id."""
    return trial_folder(cfg.logging.results_dir, cfg.trial_name)


class CheckpointRefused(RuntimeError):
    """A checkpoint that holds more than weights and plain containers: never unpickled."""


class CheckpointFile:
    """The checkpoints of one trial, in its directory."""

    def __init__(self, directory: Location | str | os.PathLike[str]) -> None:
        self.directory = Location(directory)

    def path(self, round_: int) -> Location:
        return self.directory / checkpoint_name(round_)

    def saved(self) -> list[Location]:
        """The checkpoints on storage, newest first (a legacy unchecked ``checkpoint.pt`` last)."""
        try:
            files = self.directory.files(CHECKPOINT_SUFFIX)
        except FileNotFoundError:
            return []
        rounds = {f: int(match[1]) for f in files if (match := NAME.match(f.name))}
        return sorted(rounds, key=rounds.__getitem__, reverse=True) + [f for f in files if f.name == LEGACY_NAME]

    def load(self) -> dict[str, Any] | None:
        """The newest checkpoint that reads back whole, or None when there is none (the trial starts over)."""
        return next(self.whole(), None)

    def whole(self) -> Iterator[dict[str, Any]]:
        """The checkpoints that read back whole, newest first; a damaged one is reported by name and skipped. The
        Driver takes the next one when a piece the newest lists turns out damaged (the workers read the pieces)."""
        for path in self.saved():
            try:
                state = self.load_file(path)
            except DamagedFile as error:
                log.warning("%s; %s", error, FALLING_BACK)
                continue
            yield state

    def load_file(self, path: Location) -> dict[str, Any]:
        """One checkpoint file, checked (:class:`DamagedFile` if it is not what was written)."""
        if path.name == LEGACY_NAME:
            return _unpickle(path, path.read_bytes(), LEGACY_GLOBALS)
        return _unpickle(path, read_checked(path))

    def save(self, state: dict[str, Any]) -> None:
        """Write the checkpoint of ``state["round"]`` (its clients' pieces are written before it); then delete
        all but the newest KEPT, and the pieces none of those lists."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_checked(self.path(state["round"]), buffer.getvalue())
        for old in self.saved()[KEPT:]:
            delete_checked(old)
        self._delete_unlisted_pieces(state)

    @property
    def pieces(self) -> Location:
        """Where the clients' state pieces live (runner/engine/client_state_pieces.py)."""
        return pieces_dir(self.directory)

    def client_states(self, state: dict[str, Any]) -> dict[int, ClientState]:
        """Every visited client's state in a loaded checkpoint, read whole (tests and tools: this holds the
        population's states in memory, the runner never does)."""
        if "clients" in state:  # a checkpoint written before pieces
            return dict(state["clients"])
        with tempfile.TemporaryDirectory(prefix="client-state-") as scratch:
            return {k: {part: {n: t.clone() for n, t in tensors.items()} for part, tensors in s.items()}
                    for k, s in dict(states_in(self.pieces, state.get("client_runs", []), Path(scratch))).items()}

    def _delete_unlisted_pieces(self, newest: dict[str, Any]) -> None:
        listed = referenced(newest.get("client_runs", []))
        for path in self.saved()[:KEPT]:
            if path.name != self.path(newest["round"]).name:
                try:
                    listed |= referenced(self.load_file(path).get("client_runs", []))
                except (DamagedFile, CheckpointRefused):
                    pass  # it will never be loaded: its pieces need not stay
        try:
            files = self.pieces.files(".pt")
        except FileNotFoundError:
            return
        for piece in files:
            if is_piece(piece.name) and piece.name not in listed:
                delete_checked(piece)


def _unpickle(path: Location, data: bytes, allowed: tuple[Any, ...] = ()) -> dict[str, Any]:
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(io.BytesIO(data), weights_only=True)
    except pickle.UnpicklingError as error:
        lines = str(error).strip().splitlines()
        reason = next((line for line in lines if "Unsupported global" in line or "Can only build" in line),
                      lines[0] if lines else "")
        reason = reason.strip().removeprefix("WeightsUnpickler error: ").split(". Please")[0]
        raise CheckpointRefused(
            f"{path} refused: it holds more than weights and plain containers ({reason.strip()}), and unpickling "
            "it could run code; the runner never writes such a file. Delete it (the trial then continues from "
            "the checkpoint before it, or starts over) and check who can write to the results location") from None
    except RuntimeError as error:  # the zip archive itself is broken (a legacy file has no checksum to say so)
        raise DamagedFile(f"{path} is damaged: {str(error).splitlines()[0]}") from None
