"""Clients' states in a checkpoint: pieces that hold only what changed, merged so a resume reads few files.

At a checkpoint every worker writes one *delta* piece, ``delta-<round>-w<worker>.pt``, with the states of the
clients it trained since the last checkpoint (runner/engine/client_state_store.py remembers which), so the
bytes a checkpoint writes follow the clients trained, not the population. The checkpoint file itself lists the
pieces that make up all clients' states as *runs*, oldest first; a client's state is its entry in the newest
run that has it. A checkpoint's deltas form one run of level 0; two runs of the same level are merged into one
file of the next level (a binary counter: a state is rewritten once per level, and there are about
log2(checkpoints) levels), and when more than ``logging.checkpoint_runs`` runs remain all are merged into one.
So a resume reads at most ``checkpoint_runs - 1`` merged files plus one checkpoint's deltas (one per worker).

Every piece is written with its SHA-256 beside it, checked when read back (runner/engine/storage.py), and holds
raw tensor bytes behind a JSON header (runner/engine/tensor_file.py): no pickle, so a planted piece cannot run
code on a node that resumes the trial. A merged piece can be as large as all clients' states: it is written and
read as a file on local disk, streamed to and from the results location, and memory-mapped, so neither a merge
nor a resume holds it in memory.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.engine import tensor_file
from runner.engine.client_state_store import ClientState
from runner.engine.storage import Location, read_checked_file, write_checked_file
from runner.results_layout import CLIENT_STATE

PIECE = re.compile(r"^(delta|run)-(\d+)-[wl]\d+\.pt$")
Run = dict[str, Any]  # {"level": int, "pieces": [file names]}


def pieces_dir(trial_directory: Location) -> Location:
    return trial_directory / CLIENT_STATE


def delta_name(round_: int, worker: int) -> str:
    return f"delta-{round_:06d}-w{worker:03d}.pt"


def merged_name(round_: int, level: int) -> str:
    return f"run-{round_:06d}-l{level:02d}.pt"


def write_delta(directory: Location, round_: int, worker: int, states: dict[int, ClientState]) -> int:
    """Write one worker's changed states (the clients it trained since the last checkpoint: over many rounds,
    more than memory holds) through a local file, streamed; returns its bytes."""
    return write_piece(directory / delta_name(round_, worker), states)


def write_piece(location: Location, states: tensor_file.States) -> int:
    """Write a piece through a local file (it may be larger than memory), streamed to ``location``; its bytes."""
    with tempfile.TemporaryDirectory(prefix="client-state-piece-") as scratch:
        local = Path(scratch) / "piece.pt"
        with open(local, "wb") as stream:
            tensor_file.write(states, stream)
        return write_checked_file(location, local)


def read_piece(location: Location, scratch: Path) -> dict[int, ClientState]:
    """A piece's states, memory-mapped from a checked file on this machine (a remote piece is copied to
    ``scratch`` first). The tensors read from disk when used."""
    return tensor_file.read(read_checked_file(location, scratch))


def states_in(directory: Location, runs: list[Run], scratch: Path) -> Iterator[tuple[int, ClientState]]:
    """(client, state) for every entry of every piece, oldest run first: a later entry replaces an earlier one."""
    for run in runs:
        for name in run["pieces"]:
            yield from read_piece(directory / name, scratch).items()


def add_checkpoint(directory: Location, runs: list[Run], deltas: list[str], round_: int,
                   max_runs: int) -> tuple[list[Run], int]:
    """The runs after a checkpoint that wrote ``deltas``: merged as the module docstring says. Returns them and
    the bytes the merges wrote."""
    runs = [*runs, {"level": 0, "pieces": sorted(deltas)}] if deltas else list(runs)
    written = 0
    while len(runs) >= 2 and runs[-1]["level"] == runs[-2]["level"]:
        merged, size = merge(directory, runs[-2:], round_, runs[-1]["level"] + 1)
        runs, written = [*runs[:-2], merged], written + size
    if len(runs) > max_runs:
        merged, size = merge(directory, runs, round_, max(run["level"] for run in runs) + 1)
        runs, written = [merged], written + size
    return runs, written


def merge(directory: Location, runs: list[Run], round_: int, level: int) -> tuple[Run, int]:
    """One piece with each client's newest state in ``runs``, written through a local file."""
    name = merged_name(round_, level)
    with tempfile.TemporaryDirectory(prefix="client-state-merge-") as scratch:  # remote pieces are copied here
        merged = dict(states_in(directory, runs, Path(scratch)))
        size = write_piece(directory / name, {k: merged[k] for k in sorted(merged)})
    return {"level": level, "pieces": [name]}, size


def referenced(runs: list[Run]) -> set[str]:
    return {name for run in runs for name in run["pieces"]}


def is_piece(name: str) -> bool:
    return bool(PIECE.match(name))
