"""Clients' states in a file of raw tensor bytes behind a JSON header: no pickle, so reading one runs no code.

A spill file of one client (runner/engine/client_state_store.py) and a checkpoint piece of many
(runner/engine/client_state_pieces.py) share this format. Unpickling even ``weights_only`` walks every object in
Python, which for thousands of small states costs more than the bytes; here the header is parsed once and each
tensor is a view of the file's bytes, memory-mapped when read from a path (a piece larger than memory is never
read whole).

Layout: ``MAGIC``, the header's length (8 bytes, little-endian), the header (JSON: one entry per tensor with its
client, part, name, dtype, shape and offset), then each tensor's bytes at an offset aligned to ``ALIGN``.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import Tensor

MAGIC = b"FEDPARA-STATES-1\n"
ALIGN = 64
States = Mapping[int, Mapping[str, Mapping[str, Tensor]]]  # client -> part ("params", "algo") -> name -> tensor
Loaded = dict[int, dict[str, dict[str, Tensor]]]
DTYPES = {str(t).removeprefix("torch."): t for t in (torch.float16, torch.bfloat16, torch.float32, torch.float64,
                                                       torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64,
                                                       torch.bool)}


class NotAStatesFile(ValueError):
    """The bytes are not a file this module wrote."""


def write(states: States, stream: IO[bytes]) -> int:
    """Write the states (CPU or device tensors, copied to the CPU one at a time); returns the bytes written."""
    parts: list[list[Any]] = []
    entries: list[list[Any]] = []
    tensors: list[Tensor] = []
    offset = 0
    for client, state in states.items():
        parts.append([int(client), list(state)])
        for part, named in state.items():
            for name, tensor in named.items():
                offset = _aligned(offset)
                nbytes = tensor.numel() * tensor.element_size()
                entries.append([int(client), part, name, str(tensor.dtype).removeprefix("torch."),
                                list(tensor.shape), offset, nbytes])
                tensors.append(tensor)
                offset += nbytes
    header = json.dumps({"clients": parts, "tensors": entries}).encode()
    lead = MAGIC + len(header).to_bytes(8, "little") + header
    lead += bytes(_aligned(len(lead)) - len(lead))
    stream.write(lead)
    position = 0
    for entry, tensor in zip(entries, tensors):
        start, nbytes = int(entry[5]), int(entry[6])
        stream.write(bytes(start - position))  # padding up to the aligned offset
        stream.write(tensor.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy().data)
        position = start + nbytes
    return len(lead) + position


def read(path: Path, device: torch.device | str = "cpu", mapped: bool = True) -> Loaded:
    """The states in a file: views of its memory-mapped bytes (``mapped``: read from disk when used, never written
    back) or copies on ``device``."""
    with open(path, "rb") as file:
        if mapped and torch.device(device).type == "cpu" and path.stat().st_size:
            return from_buffer(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY), str(path))
        on_cpu = torch.device(device).type == "cpu"  # views of the bytes read: no second copy
        return from_buffer(bytearray(file.read()), str(path), None if on_cpu else device)


def from_buffer(buffer: Any, where: str, device: torch.device | str | None = None) -> Loaded:
    """The states in a writable buffer holding a file's bytes: views of it, or copies on ``device``."""
    if bytes(buffer[:len(MAGIC)]) != MAGIC:
        raise NotAStatesFile(f"{where} is not a client-states file (it does not start with {MAGIC!r})")
    length = int.from_bytes(buffer[len(MAGIC):len(MAGIC) + 8], "little")
    header = json.loads(bytes(buffer[len(MAGIC) + 8:len(MAGIC) + 8 + length]))
    start = _aligned(len(MAGIC) + 8 + length)
    whole = torch.frombuffer(buffer, dtype=torch.uint8) if len(buffer) > start else torch.empty(0, dtype=torch.uint8)
    states: Loaded = {int(client): {part: {} for part in parts} for client, parts in header["clients"]}
    for client, part, name, dtype, shape, offset, nbytes in header["tensors"]:
        if dtype not in DTYPES:
            raise NotAStatesFile(f"{where}: tensor {name} of client {client} has dtype {dtype!r}")
        tensor = whole[start + offset:start + offset + nbytes].view(DTYPES[dtype]).reshape(shape)
        states[int(client)][part][name] = tensor if device is None else tensor.to(device, copy=True)
    return states


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN
