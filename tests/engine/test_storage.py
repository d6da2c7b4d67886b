"""Results and checkpoints on a local path, a file:// URI and S3 (a local S3 emulator): what readers see.

No Ray here: the Parquet sink, the checkpoint file, results reading and figures, each through
runner/engine/storage.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from small_trial import row

from runner.config import TrialConfig
from runner.engine import storage
from runner.engine.checkpoint import CheckpointFile, trial_dir
from runner.engine.storage import Location
from runner.study.figures import FIGURE3_FILE, TABLES_FILE, plot_results
from runner.study.results import RoundsTable, load_rounds, parquet_bytes, rounds_path


def readers(rounds_dir: Path) -> dict[str, int]:
    """How many rows each way of reading a directory of Parquet files sees."""
    return {"pandas": len(pd.read_parquet(rounds_dir)), "pyarrow": pq.read_table(rounds_dir).num_rows,
            "dataset": ds.dataset(rounds_dir, format="parquet").count_rows(),
            "load_rounds": len(load_rounds(rounds_dir.parent))}


def test_a_write_cut_short_before_its_rename_leaves_readers_the_last_complete_rows(tmp_path, monkeypatch):
    table = RoundsTable(rounds_path(tmp_path, "t"))
    table.append(row(1))
    table.append(row(2))

    def crash(fs, staged, path):
        raise KeyboardInterrupt("the process dies between writing the new file and the rename")

    monkeypatch.setattr(storage, "_replace", crash)
    with pytest.raises(KeyboardInterrupt):
        table.append(row(3))
    rounds = tmp_path / "rounds"
    assert sorted(p.name for p in rounds.iterdir()) == [".t.parquet.tmp", "t.parquet"]  # the crash left it there
    assert pq.read_table(rounds / ".t.parquet.tmp").num_rows == 3  # a complete file, just not published
    assert readers(rounds) == dict.fromkeys(["pandas", "pyarrow", "dataset", "load_rounds"], 2)

    monkeypatch.undo()
    RoundsTable(rounds_path(tmp_path, "t")).append(row(3))  # the trial resumes: the next write replaces both
    assert sorted(p.name for p in rounds.iterdir()) == ["t.parquet"]
    assert readers(rounds) == dict.fromkeys(["pandas", "pyarrow", "dataset", "load_rounds"], 3)


def test_rows_written_before_train_precision_existed_read_as_fp32(tmp_path):
    old = {k: v for k, v in row(1).items() if k != "train.precision"}
    directory = tmp_path / "rounds"
    directory.mkdir()
    pq.write_table(pa.Table.from_pylist([old]), directory / "old.parquet")
    assert "train.precision" not in pq.read_schema(directory / "old.parquet").names
    assert load_rounds(tmp_path)["train.precision"].tolist() == ["fp32"]
    table = RoundsTable(directory / "old.parquet")  # a resumed trial keeps its old rows, now with the column
    table.append(row(2))
    assert pd.read_parquet(directory / "old.parquet")["train.precision"].tolist() == ["fp32", "fp32"]


def test_a_write_in_progress_is_invisible_to_readers(tmp_path):
    """While a trial writes, its half-written temporary file sits next to the rows of every other trial."""
    RoundsTable(rounds_path(tmp_path, "a")).append(row(1, "a"))
    RoundsTable(rounds_path(tmp_path, "b")).append(row(1, "b"))
    whole = parquet_bytes([row(1, "b"), row(2, "b")])
    (tmp_path / "rounds" / storage.temporary_name("b.parquet")).write_bytes(whole[: len(whole) // 2])
    assert readers(tmp_path / "rounds") == dict.fromkeys(["pandas", "pyarrow", "dataset", "load_rounds"], 2)


def test_file_uri_results_land_at_the_path_and_read_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a URI taken for a relative path would create ./file:/... here
    where = tmp_path / "results"
    uri = f"file://{where}"
    cfg = TrialConfig.from_dict({"logging": {"results_dir": f"{uri}/unit"}, "sweep": "unit", "name": "t"})
    assert str(trial_dir(cfg)) == f"{uri}/unit/trials/t"

    table = RoundsTable(rounds_path(f"{uri}/unit", "t"))
    table.append(row(1))
    table.append(row(2))
    checkpoint = CheckpointFile(trial_dir(cfg))
    checkpoint.save({"round": 2, "weights": [1.5, 2.5]})

    assert sorted(os.listdir(where / "unit" / "rounds")) == ["t.parquet"]
    assert sorted(os.listdir(where / "unit" / "trials" / "t")) == ["checkpoint-000002.pt",
                                                                    "checkpoint-000002.pt.sha256"]
    assert not (tmp_path / "file:").exists()
    pd.testing.assert_frame_equal(load_rounds(f"{uri}/unit"), load_rounds(where / "unit"))
    assert list(load_rounds(f"{uri}/unit")["round"]) == [1, 2]
    assert CheckpointFile(f"{uri}/unit/trials/t").load() == {"round": 2, "weights": [1.5, 2.5]}
    assert RoundsTable(rounds_path(f"{uri}/unit", "t")).last_round == 2  # a resumed trial finds its rows


def test_locations_join_and_normalize_without_touching_storage():
    assert storage.join("s3://bucket/fedpara", "fig4", "rounds") == "s3://bucket/fedpara/fig4/rounds"
    assert storage.join("s3://b/p?endpoint_override=localhost:9000", "x") == "s3://b/p/x?endpoint_override=localhost:9000"
    assert storage.join("results", "fig4") == "results/fig4"  # a local path stays as given
    assert str(Location("file:///") / "tmp") == "file:///tmp"
    location = Location("gs://bucket/fedpara/") / "fig4"
    assert (str(location), location.name, str(location.parent)) == ("gs://bucket/fedpara/fig4", "fig4",
                                                                     "gs://bucket/fedpara")
    assert str(Location("~/r")) == str(Path("~/r").expanduser())


# --- S3, through a local emulator (the s3_bucket fixture: tests/conftest.py) ----------------------------------

def keys(bucket: str, prefix: str) -> list[str]:
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(f"{bucket}/{prefix}")
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    return sorted(i.path.removeprefix(path + "/") for i in infos if i.type == pafs.FileType.File)


def test_s3_results_rows_checkpoints_and_figures(s3_bucket):
    results = f"{s3_bucket}/fedpara/unit"
    for trial in ("a", "b"):
        table = RoundsTable(rounds_path(results, trial))
        for r in (1, 2, 3):
            table.append(row(r, trial))
    cfg = TrialConfig.from_dict({"logging": {"results_dir": results}, "sweep": "unit", "name": "a"})
    CheckpointFile(trial_dir(cfg)).save({"round": 3})

    assert keys(s3_bucket, "fedpara/unit") == ["rounds/a.parquet", "rounds/b.parquet", "trials/a/checkpoint-000003.pt",
                                               "trials/a/checkpoint-000003.pt.sha256"]
    rows = load_rounds(results)
    assert list(rows["trial"]) == ["a"] * 3 + ["b"] * 3 and list(rows["round"]) == [1, 2, 3] * 2
    assert CheckpointFile(f"{results}/trials/a").load() == {"round": 3}
    assert RoundsTable(rounds_path(results, "b")).last_round == 3

    (Location(results) / "rounds" / storage.temporary_name("c.parquet")).write_bytes(b"PAR1 cut short")
    assert len(load_rounds(results)) == 6  # a hidden object is not rows, on S3 too

    written = plot_results(results)
    assert {FIGURE3_FILE, TABLES_FILE} <= {w.name for w in written}
    assert "final accuracy" in (Location(results) / "figures" / TABLES_FILE).read_bytes().decode()


def test_a_node_that_cannot_write_the_results_says_where_and_why(s3_bucket):
    with pytest.raises(storage.StorageError, match=r"cannot write s3://no-such-bucket/fedpara/x from node .*"
                                                   r"bucket does not exist.*the bucket must exist"):
        Location("s3://no-such-bucket/fedpara/x").write_bytes(b"row")
    with pytest.raises(FileNotFoundError):
        Location(f"{s3_bucket}/fedpara/none").read_bytes()
