"""Faults a long sweep meets: damaged or foreign checkpoints, damaged rows files, a trial that diverges.

Each test injects the fault the way it happens (a file cut short, a byte edited, a pickle that would run code,
a learning rate that blows the model up) and checks what the runner does, against the rows of an
uninterrupted run where it continues. Two runs of one sweep at once: tests/test_sweep_lease.py.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from runner.engine.checkpoint import CheckpointFile, CheckpointRefused, trial_dir
from runner.engine.storage import DamagedFile, Location, checksum_of, write_checked
from runner.study.results import RoundsTable, load_rounds, read_rows, rounds_path


class RunsCode:
    """What a planted checkpoint could carry: unpickling it calls ``Path.touch`` (any callable would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def weights(round_: int) -> dict:
    return {"round": round_, "global": {"w": torch.full((3,), float(round_))}, "trial": "t", "sinks": {}}


def test_checkpoints_load_weights_only_and_one_carrying_code_is_refused_naming_it(tmp_path):
    checkpoints = CheckpointFile(tmp_path / "trial")
    checkpoints.save(weights(1))
    assert torch.equal(checkpoints.load()["global"]["w"], torch.ones(3))
    marker = tmp_path / "code-ran"
    buffer = io.BytesIO()
    torch.save({**weights(2), "payload": RunsCode(marker)}, buffer)
    planted = checkpoints.path(2)
    write_checked(planted, buffer.getvalue())  # a valid checksum: only what it holds gives it away
    with pytest.raises(CheckpointRefused, match=rf"^{planted} refused: it holds more than weights and "
                                                  r"plain containers \(Unsupported global: GLOBAL getattr was not"):
        checkpoints.load()
    assert not marker.exists()
    torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)  # what loading it the old way did
    assert marker.exists()


def test_a_checkpoint_written_before_checksums_still_loads_with_its_numpy_client_states(tmp_path):
    (tmp_path / "trial").mkdir()
    legacy = {**weights(4), "clients": {7: {"params": {"w": np.arange(3, dtype=np.float32)}}}}
    torch.save(legacy, tmp_path / "trial" / "checkpoint.pt")
    loaded = CheckpointFile(tmp_path / "trial").load()
    assert loaded["round"] == 4 and loaded["clients"][7]["params"]["w"].tolist() == [0, 1, 2]
    CheckpointFile(tmp_path / "trial").save(weights(5))  # the next checkpoint supersedes it
    assert CheckpointFile(tmp_path / "trial").load()["round"] == 5


def test_a_damaged_checkpoint_is_reported_and_the_one_before_it_loaded(tmp_path, caplog):
    checkpoints = CheckpointFile(tmp_path / "trial")
    for r in (1, 2, 3):
        checkpoints.save(weights(r))
    assert sorted(p.name for p in (tmp_path / "trial").iterdir()) == [
        "checkpoint-000002.pt", "checkpoint-000002.pt.sha256", "checkpoint-000003.pt", "checkpoint-000003.pt.sha256"]
    newest = tmp_path / "trial" / "checkpoint-000003.pt"
    whole = newest.read_bytes()
    damages = {"cut short": whole[: len(whole) // 2], "edited": whole[:-40] + bytes(40)}
    for what, damaged in damages.items():
        newest.write_bytes(damaged)
        with caplog.at_level(logging.WARNING, logger="runner.engine.checkpoint"):
            assert checkpoints.load()["round"] == 2, what
        assert f"{newest} is damaged: {len(damaged)} bytes whose SHA-256" in caplog.text
        caplog.clear()
    newest.write_bytes(whole)
    Path(str(checksum_of(Location(newest)))).unlink()  # the process died between the file and its checksum
    with caplog.at_level(logging.WARNING, logger="runner.engine.checkpoint"):
        assert checkpoints.load()["round"] == 2
    assert f"{newest} has no checksum beside it" in caplog.text
    (tmp_path / "trial" / "checkpoint-000002.pt").write_bytes(b"")
    assert checkpoints.load() is None  # nothing whole is left: the trial starts over


def test_a_damaged_rows_file_is_reported_naming_it_and_left_out_of_the_sweep(tmp_path, caplog):
    from small_trial import row

    for trial in ("a", "b"):
        table = RoundsTable(rounds_path(tmp_path, trial))
        for r in (1, 2):
            table.append(row(r, trial))
    path = tmp_path / "rounds" / "b.parquet"
    edited = pq.read_table(path)  # edited by hand: one accuracy changed, the file otherwise as written
    accuracy = edited.schema.get_field_index("test_accuracy")
    edited = edited.set_column(accuracy, "test_accuracy", pa.chunked_array([[0.9, 0.2]]))
    whole = path.read_bytes()
    for what, damage in {"edited": lambda: pq.write_table(edited, path),
                         "cut short": lambda: path.write_bytes(whole[: len(whole) - 100])}.items():
        damage()
        with pytest.raises(DamagedFile, match=rf"^{path} is damaged"):
            read_rows(Location(path))
        with caplog.at_level(logging.WARNING, logger="runner.study.results"):
            table = RoundsTable(path)
            rows = load_rounds(tmp_path)
        assert table.damaged and table.rows == [], what
        assert list(rows["trial"]) == ["a", "a"], what
        assert caplog.text.count(f"{path} is damaged") == 2, what
        caplog.clear()
    path.write_bytes(whole)
    assert list(load_rounds(tmp_path)["trial"]) == ["a", "a", "b", "b"]


# --- whole trials on the session's Ray ----------------------------------------------------------------------


@pytest.mark.usefixtures("ray_session")
def test_a_trial_whose_newest_checkpoint_and_rows_are_damaged_ends_with_the_rows_of_an_uninterrupted_run(
        tmp_path, caplog):
    from small_trial import Crash, crash_after, metrics, small

    from runner.study.trial import run_trial

    cfg = small(tmp_path, algorithm={"name": "scaffold"}, data={"num_clients": 6, "clients_per_round": 3})

    with pytest.raises(Crash):
        run_trial(cfg, report=crash_after(3))
    rows_file = Path(str(rounds_path(tmp_path, cfg.trial_name)))
    uninterrupted = load_rounds(tmp_path)  # every round's row, from one run that was never interrupted
    assert list(uninterrupted["round"]) == [1, 2, 3]
    directory = Path(str(trial_dir(cfg)))
    assert sorted(p.name for p in directory.glob("checkpoint-*.pt")) == ["checkpoint-000001.pt",
                                                                           "checkpoint-000002.pt"]
    newest = directory / "checkpoint-000002.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a full disk cut both short
    rows_file.write_bytes(rows_file.read_bytes()[:500])

    with caplog.at_level(logging.WARNING, logger="runner.study.results"):
        resumed = run_trial(cfg)  # from checkpoint 1 and the rows it keeps; rounds 2 and 3 redone
    assert f"{rows_file} is damaged" in caplog.text
    pd.testing.assert_frame_equal(metrics(resumed), metrics(uninterrupted))
    pd.testing.assert_frame_equal(metrics(load_rounds(tmp_path)), metrics(uninterrupted))
    assert sorted(p.name for p in directory.glob("checkpoint-*.pt")) == ["checkpoint-000002.pt",
                                                                           "checkpoint-000003.pt"]


@pytest.mark.usefixtures("ray_session")
def test_a_damaged_client_state_piece_of_the_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    """The workers read the clients' states from pieces beside the checkpoints: one that only the newest
    checkpoint lists, cut short, is refused by its checksum and the trial resumes from the checkpoint before."""
    from small_trial import Crash, crash_after, metrics, small

    from runner.engine.checkpoint import CheckpointFile
    from runner.engine.client_state_pieces import referenced
    from runner.study.trial import run_trial

    cfg = small(tmp_path, algorithm={"name": "scaffold"}, data={"num_clients": 6, "clients_per_round": 3},
                train={"rounds": 4})

    with pytest.raises(Crash):
        run_trial(cfg, report=crash_after(3))
    uninterrupted = load_rounds(tmp_path)  # rounds 1-3 as one process ran them
    checkpoints = CheckpointFile(trial_dir(cfg))
    newest, before = (checkpoints.load_file(path) for path in checkpoints.saved())
    assert (newest["round"], before["round"]) == (2, 1)
    only_newest = sorted(referenced(newest["client_runs"]) - referenced(before["client_runs"]))
    assert only_newest, "the newest checkpoint lists a piece of its own"
    piece = Path(str(checkpoints.pieces / only_newest[0]))
    piece.write_bytes(piece.read_bytes()[:100])

    resumed = run_trial(cfg)  # checkpoint 2 reads whole, its piece does not: from checkpoint 1, rounds 2-4 run
    assert list(resumed["round"]) == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(metrics(resumed.iloc[:3]), metrics(uninterrupted))
    # round 1's row is the one checkpoint 1 kept; round 2 was run again (its timing is this run's, not the first's)
    assert resumed["round_seconds"].iloc[0] == uninterrupted["round_seconds"].iloc[0]
    assert resumed["round_seconds"].iloc[1] != uninterrupted["round_seconds"].iloc[1]
    assert CheckpointFile(trial_dir(cfg)).load()["round"] == 4


@pytest.mark.usefixtures("ray_session")
def test_a_diverging_trial_stops_at_that_round_says_so_everywhere_and_stays_stopped(tmp_path, caplog):
    import wandb_records
    from small_trial import small

    from runner.provenance import CodeVersion
    from runner.study.progress import sweep_progress
    from runner.study.sweep_context import SweepContext
    from runner.study.tables import tables_markdown
    from runner.study.trial import run_trial
    from runner.study.wandb_access import WandbAccess

    cfg = small(tmp_path, model={"parameterization": "pfedpara"}, algorithm={"name": "pfedpara"},
                train={"rounds": 4, "lr": 2.0}, logging={"wandb": "offline"}, sweep="unit")  # lr 2: inf in round 2
    context = SweepContext(WandbAccess("offline", "test"), CodeVersion("0123abcd", False))
    with caplog.at_level(logging.WARNING):
        rows = run_trial(cfg, context=context)
    assert list(rows["round"]) == [1, 2] and rows["diverged"].isna().tolist() == [True, False]
    what = "global weight hidden.1.x1 not finite"
    assert rows["diverged"].iloc[1] == what
    assert rows["test_accuracy"].iloc[0] > 0 and rows["test_accuracy"].isna().iloc[1]  # round 2: not evaluated
    assert f"trial {cfg.trial_name} diverged at round 2 ({what}): stopped there" in caplog.text
    run_files = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    summary = wandb_records.summary(run_files[0])
    assert summary["diverged"] == f"diverged at round 2 ({what})" and "final_test_accuracy" not in summary
    assert sweep_progress(tmp_path).lines()[-1] == (
        f"1 diverged (stopped, no final accuracy): {cfg.trial_name} at round 2 ({what})")

    healthy = rows.iloc[:1].assign(seed=4, trial="the-same-experiment-seed-4")  # a seed that did not diverge
    accuracy = f"{100 * healthy['test_accuracy'].iloc[0]:.2f}"
    tables = tables_markdown(pd.concat([rows, healthy], ignore_index=True))
    assert tables is not None and tables.count("diverged at round 2") == 2  # Tables 2/3, and its group's row
    assert accuracy not in tables  # never the other seed's accuracy as the group's result

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = run_trial(cfg, context=context)  # --resume: it stays stopped, as ASHA's stopped trials do
    pd.testing.assert_frame_equal(again, rows)
    assert "diverged at round 2 in an earlier run: left stopped" in caplog.text
    Path(str(rounds_path(tmp_path, cfg.trial_name))).unlink()  # its checkpoint alone knows it diverged
    again = run_trial(cfg, context=context)
    pd.testing.assert_frame_equal(again, rows)
    assert len(list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))) == 1  # no round logged again


DIVERGING_SWEEP = """
name: diverging
description: a tiny trial that learns beside one whose learning rate blows it up
base:
  data: {dataset: synthetic, num_clients: 4, clients_per_round: 2}
  model: {arch: fc2, parameterization: fedpara, gamma: 0.5}
  train: {rounds: 2, local_epochs: 1, batch_size: 64}
  resources: {num_workers: 1, cpus_per_worker: 0.25, gpus_per_worker: 0, driver_cpus: 0.25}
  logging: {checkpoint_every: 1, wandb: disabled}
grid:
  train.lr: [0.05, 1000.0]
"""


def test_a_sweep_names_its_diverged_trial_marks_it_in_tables_and_runs_the_others(ray_session, tmp_path, capsys,
                                                                                  monkeypatch):
    import ray

    from runner import sweep as sweep_cli

    monkeypatch.setattr(ray, "init", lambda **kwargs: None)  # the session's Ray is already up
    (tmp_path / "diverging.yaml").write_text(DIVERGING_SWEEP)
    argv = [str(tmp_path / "diverging.yaml"), "--results", str(tmp_path / "results")]
    assert sweep_cli.main(argv) == 0  # a diverged trial is a result, not a failure of the sweep
    results = tmp_path / "results" / "diverging"
    rows = load_rounds(results)
    last = rows.groupby("train.lr")["round"].max().to_dict()
    assert last == {0.05: 2, 1000.0: 1}  # the other trial ran to its end
    [diverged] = rows.loc[rows["diverged"].notna(), "trial"]
    assert f"trial diverged: {diverged} at round 1 (" in capsys.readouterr().err
    tables = (results / "figures" / "tables.md").read_text()
    assert "diverged at round 1" in tables and "| 2 | 1 |" in tables  # and the learning trial's full row

    assert sweep_cli.main([*argv, "--resume", "--no-plot"]) == 0
    pd.testing.assert_frame_equal(load_rounds(results), rows)  # still stopped, nothing redone
