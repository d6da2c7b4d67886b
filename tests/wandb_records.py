"""Read an offline W&B run file (``run-<id>.wandb``) back, for tests.

The file is a LevelDB-style log: a 7-byte header (":W&B", magic, version), then 32 KiB blocks of
records, each with a 7-byte header (crc32, length, type: full/first/middle/last) and a chunk of a
serialized ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

FILE_HEADER, RECORD_HEADER, BLOCK = 7, 7, 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[pb.Record]:
    raw = Path(path).read_bytes()
    assert raw[:4] == b":W&B", f"{path} is not a W&B run file"
    out, pos, pending = [], FILE_HEADER, b""
    while pos + RECORD_HEADER <= len(raw):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < RECORD_HEADER:  # block trailer padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos:pos + RECORD_HEADER])
        chunk = raw[pos + RECORD_HEADER:pos + RECORD_HEADER + length]
        pos += RECORD_HEADER + length
        if kind == 0 and length == 0:
            break
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def history(path: Path) -> list[dict]:
    """The logged rows, in order, as {key: value} (``_step`` included)."""
    rows = []
    for r in records(path):
        if r.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item})
    return rows


def config(path: Path) -> dict:
    """The run's config: the run record's, updated by any later config records."""
    out = {}
    for r in records(path):
        kind = r.WhichOneof("record_type")
        updates = r.run.config.update if kind == "run" else r.config.update if kind == "config" else []
        for item in updates:
            out[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out


def summary(path: Path) -> dict:
    out = {}
    for r in records(path):
        if r.WhichOneof("record_type") == "summary":
            for item in r.summary.update:
                out[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out


def run_info(path: Path) -> pb.RunRecord:
    return next(r.run for r in records(path) if r.WhichOneof("record_type") == "run")


def metrics(path: Path) -> dict[str, str]:
    """The run's declared metrics (``define_metric``): name -> its step metric ("" for an axis of its own)."""
    return {r.metric.name: r.metric.step_metric for r in records(path)
            if r.WhichOneof("record_type") == "metric" and r.metric.name}
