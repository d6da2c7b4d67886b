"""One Parquet file per trial, one row per round, written atomically; and what "final accuracy" means.

Every trial's file has the same explicit schema (derived from the config dataclasses plus the metric
columns), so a sweep's files read as one table: ``pd.read_parquet(<results_dir>/rounds)``. The file is
rewritten whole after each round (runner/engine/storage.py: a hidden temporary name and a rename, or one
put on an object store): a reader, during a sweep or after a crash, sees each trial's last complete file
once, never a truncated one or a second copy.

Each file carries the SHA-256 of its rows in its Parquet metadata (``fedpara.rows_sha256``), checked when it is
read back: a file cut short or edited is reported by name (:class:`DamagedFile`). A trial whose file is
damaged continues from the rows its checkpoint keeps (:meth:`RoundsTable.state`), the rounds after it redone;
a reader of a whole sweep (figures, progress) leaves a damaged file out, saying so.

A trial that diverged (runner/engine/driver.py) has a last row whose ``diverged`` column says what was not
finite; its final accuracy is not a number but "diverged at round r" (:func:`diverged_at`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from runner.config import ADDED_FIELDS, config_columns, hint_options
from runner.engine.storage import DamagedFile, Location
from runner.engine.trial import RoundSink
from runner.results_layout import ROWS_SUFFIX, rounds_dir, rounds_file

log = logging.getLogger(__name__)

METRIC_COLUMNS: dict[str, pa.DataType] = {
    "trial": pa.string(), "num_parameters": pa.int64(), "original_parameters": pa.int64(),
    "param_ratio": pa.float64(), "params_sent": pa.int64(), "round": pa.int64(), "lr": pa.float64(),
    "clients": pa.int64(), "train_loss": pa.float64(), "test_accuracy": pa.float64(), "test_loss": pa.float64(),
    "test_accuracy_client_mean": pa.float64(),  # personalized trials: the mean over clients of their own accuracy
    "val_accuracy": pa.float64(), "val_loss": pa.float64(),  # on data.validation_fraction of the training samples
    "bytes_down": pa.int64(), "bytes_up": pa.int64(), "bytes_round": pa.int64(), "cumulative_bytes": pa.int64(),
    "round_seconds": pa.float64(), "elapsed_seconds": pa.float64(),
    "worker_seconds": pa.float64(),  # the slowest worker's training call; round_seconds less this: the round's overhead
    "worker_peak_mib": pa.float64(),  # the busiest worker's peak memory so far (CUDA on a GPU, RSS on a CPU)
    "diverged": pa.string(),  # null, or on a diverged trial's last row what was not finite
    # which code made the row (runner/provenance.py)
    "code_commit": pa.string(), "code_dirty": pa.bool_(), "runner_version": pa.string(),
    "torch_version": pa.string(), "ray_version": pa.string(),
}
# Where and how fast a trial ran, not what it learnt: the columns that differ between identical runs.
MACHINE_COLUMNS = ("round_seconds", "elapsed_seconds", "worker_seconds", "worker_peak_mib")
FINAL_ROUNDS = 5  # a trial's final accuracy: the mean test accuracy over this many last evaluated rounds
BYTES_PER_GB = 1e9
ROWS_DIGEST_KEY = b"fedpara.rows_sha256"  # Parquet metadata: the SHA-256 of the file's rows (rows_digest)
_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def _arrow_type(hint: Any) -> pa.DataType:
    return next(_ARROW[o] for o in hint_options(hint) if o in _ARROW)


SCHEMA = pa.schema([*((name, _arrow_type(hint)) for name, hint in config_columns().items()),
                    *METRIC_COLUMNS.items()])


def final_accuracy(accuracies: Iterable[float | None]) -> float:
    """A trial's final accuracy: the mean test accuracy over its last FINAL_ROUNDS evaluated rounds (rounds
    without an evaluation are skipped); NaN when no round was evaluated. The one definition that the W&B
    summary, tables.md and Figure 4 use (figures and tables then average it over seeds)."""
    evaluated = [float(a) for a in accuracies if a is not None and not math.isnan(a)]
    last = evaluated[-FINAL_ROUNDS:]
    return sum(last) / len(last) if last else math.nan


def diverged_at(rows: Sequence[Mapping[str, Any]]) -> int | None:
    """The round a trial diverged at (its rows in round order), or None."""
    return rows[-1]["round"] if rows and rows[-1].get("diverged") else None


def diverged_text(round_: int) -> str:
    """What tables, the W&B summary and the console say instead of a diverged trial's accuracy."""
    return f"diverged at round {round_}"


def final_numbers(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A finished trial's headline numbers, from its rows in round order (the W&B summary). A diverged trial
    has no final accuracy: ``diverged`` says at which round and what was not finite."""
    last = rows[-1]
    numbers = {"param_ratio": last["param_ratio"], "num_parameters": last["num_parameters"],
               "cumulative_bytes": last["cumulative_bytes"], "total_gb": last["cumulative_bytes"] / BYTES_PER_GB,
               "rounds": last["round"]}
    at = diverged_at(rows)
    if at is not None:
        return {**numbers, "diverged": f"{diverged_text(at)} ({last['diverged']})"}
    return {"final_test_accuracy": final_accuracy(r["test_accuracy"] for r in rows), **numbers}


class RoundsTable(RoundSink):
    """The rows of one trial, kept in memory and mirrored to its Parquet file after every append.

    ``labels`` are columns every row of this run of the trial carries (its code version)."""

    def __init__(self, path: Location | str | os.PathLike[str], labels: Mapping[str, Any] | None = None) -> None:
        self.path = Location(path)
        self.labels = dict(labels or {})
        self.rows: list[dict[str, Any]] = []
        self.saved: list[dict[str, Any]] | None = None  # the rows the trial's checkpoint keeps (restore)
        self.damaged = False
        if self.path.exists():
            try:
                self.rows = read_rows(self.path).to_pylist()
            except DamagedFile as error:
                self.damaged = True
                log.warning("%s; the trial continues from the rows its checkpoint keeps, redoing the rounds after "
                            "it", error)

    @property
    def last_round(self) -> int:
        return self.rows[-1]["round"] if self.rows else 0

    @property
    def diverged_at(self) -> int | None:
        return diverged_at(self.rows)

    def state(self) -> list[dict[str, Any]]:
        """The rows so far, kept with each checkpoint: the last good rows when this file is damaged."""
        return list(self.rows)

    def restore(self, state: Any) -> None:
        self.saved = list(state)

    def open(self, resumed_after: int, constants: Mapping[str, Any]) -> None:
        """Keep the rows up to the round the trial resumes after; the rest are redone identically. Rows this
        file lacks (it was damaged) come from the checkpoint."""
        if self.saved is not None and (self.damaged or self.last_round < resumed_after):
            self.rows = [r for r in self.saved if r["round"] <= resumed_after]
            self._write()
        self.truncate(resumed_after)
        if resumed_after and self.last_round < resumed_after:
            raise RuntimeError(f"{self.path}: the trial's checkpoint is at round {resumed_after} but its rows end "
                               f"at round {self.last_round}; delete the trial's checkpoints "
                               "(trials/<trial>/checkpoint-*) to start it over")

    def write(self, row: Mapping[str, Any]) -> None:
        self.append(row)

    def truncate(self, last_round: int) -> None:
        """Forget rows after ``last_round`` (they are redone from the checkpoint, identically)."""
        kept = [r for r in self.rows if r["round"] <= last_round]
        if len(kept) != len(self.rows):
            self.rows = kept
            self._write()

    def append(self, row: Mapping[str, Any]) -> None:
        row = {**row, **self.labels}  # as plain Python values (no numpy scalars), as a checkpoint keeps them
        self.rows.append(pa.Table.from_pylist([row], schema=SCHEMA).to_pylist()[0])
        self._write()

    def frame(self) -> pd.DataFrame:
        return pa.Table.from_pylist(self.rows, schema=SCHEMA).to_pandas()

    def _write(self) -> None:
        self.path.write_bytes(parquet_bytes(self.rows))


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    """Rows as one Parquet file with the results schema and the rows' digest, serialized in memory."""
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata({ROWS_DIGEST_KEY: rows_digest(table)}), sink)
    return sink.getvalue().to_pybytes()


def rows_digest(table: pa.Table) -> str:
    """The SHA-256 of a table's column names and values, as Python reads them (the same before a write and
    after a read, whatever Parquet's encoding)."""
    text = json.dumps(table.to_pydict(), default=str)  # NaN as NaN; floats round-trip exactly
    return hashlib.sha256(text.encode()).hexdigest()


def read_rows(path: Location) -> pa.Table:
    """A trial's rows, checked against their digest; a config column its file predates reads as the value the
    trial had (ADDED_FIELDS). :class:`DamagedFile` when the file is cut short, unreadable or edited."""
    data = path.read_bytes()
    try:
        written = pq.read_table(pa.BufferReader(data))
        table = pq.read_table(pa.BufferReader(data), schema=SCHEMA)
    except (pa.ArrowException, OSError) as error:
        raise DamagedFile(f"{path} is damaged: {len(data)} bytes that do not read as Parquet ({error})") from None
    expected = (written.schema.metadata or {}).get(ROWS_DIGEST_KEY)
    if expected is not None:  # files written before rows carried a digest are read unchecked
        written = written.replace_schema_metadata(None)
        if rows_digest(written) != expected.decode():
            raise DamagedFile(f"{path} is damaged: its rows do not match the digest written with them (edited?)")
    for name, value in ADDED_FIELDS.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.fill_null(table.column(i), value))
    return table


def rounds_path(results_dir: Location | str | os.PathLike[str], trial_name: str) -> Location:
    return rounds_file(results_dir, trial_name)


def load_rounds(results_dir: Location | str | os.PathLike[str]) -> pd.DataFrame:
    """Every trial's rows under a sweep's results directory (a path or a URI), as one table; temporary
    files of writes in progress or cut short are not rows."""
    directory = rounds_dir(results_dir)
    files = directory.files(ROWS_SUFFIX)
    if not files:
        raise FileNotFoundError(f"no results under {directory}: run a sweep or trial first")
    tables = []
    for path in files:
        try:
            tables.append(read_rows(path))
        except DamagedFile as error:
            log.warning("%s; its trial's rows are left out (resuming the sweep rewrites them)", error)
    if not tables:
        raise FileNotFoundError(f"no readable results under {directory}: every rows file is damaged")
    return pa.concat_tables(tables).to_pandas()
