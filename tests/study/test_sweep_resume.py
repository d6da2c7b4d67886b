"""``--resume`` and ``<results>/<sweep>/sweep.json``: what a resume may change (flags, logging.*, resources.*:
honored, printed) and what it may not (what a trial is: refused by name, before anything is written)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pandas as pd
import pytest
from tiny_sweep import spy_on_tuners

from runner import sweep as sweep_cli
from runner.config import TrialConfig
from runner.study.sweep_file import SweepError
from runner.study.sweep_record import SweepRecord, check_resume, read_record


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def tuners(ray_session, monkeypatch):
    """The real Tuner on the session's Ray, recording how each run builds or restores it."""
    return spy_on_tuners(monkeypatch)


def test_resume_refuses_a_changed_trial_by_name_and_honors_new_flags(finished_tiny_sweep, capsys, tuners):
    """Continues the session's one run of the tiny sweep (``train.rounds=1``)."""
    sweep_file, results = finished_tiny_sweep.sweep_file, finished_tiny_sweep.results
    common = [str(sweep_file), "--results", str(results), "--no-plot"]
    assert finished_tiny_sweep.code == 0 and [kind for kind, _ in finished_tiny_sweep.tuners] == ["new"]
    record = read_record(results / "tiny")
    assert record is not None and record.overrides == {"train.rounds": 1} and record.max_concurrent is None
    assert sorted(flat["seed"] for flat in record.trials.values()) == [0, 1]
    assert {flat["train.rounds"] for flat in record.trials.values()} == {1}
    written = files(results)
    rows = pd.read_parquet(results / "tiny" / "rounds")
    assert sorted(rows.groupby("seed")["round"].max().items()) == [(0, 1), (1, 1)]
    capsys.readouterr()

    assert sweep_cli.main([*common, "train.rounds=1", "train.lr=0.2", "--resume"]) == 2
    assert "error: train.lr=0.2 changes the 2 trials of the run being resumed" in capsys.readouterr().err
    assert sweep_cli.main([*common, "--resume"]) == 2  # the file's 2 rounds: other trials
    assert "the run being resumed was started with train.rounds=1: without it" in capsys.readouterr().err
    assert files(results) == written  # refused before anything was written
    assert tuners == []  # nor any Tuner built

    argv = [*common, "train.rounds=1", "logging.checkpoint_every=2", "--max-concurrent", "1", "--resume",
            "--progress-every", "0"]
    drivers = driver_actors()
    assert sweep_cli.main(argv) == 0
    assert driver_actors() == drivers  # finished trials are not relaunched: no Driver (nor worker) starts
    captured = capsys.readouterr()
    out = captured.out
    heads = re.findall(r"^tiny \[\w+\]: .*$", out + captured.err, re.MULTILINE)
    assert heads and heads[0].endswith("2 done, 0 running, 0 pending | rounds 2/2 | ETA -"), heads  # first line
    assert "resume: --max-concurrent 1 (the run started with none)" in out
    assert "resume: logging.checkpoint_every=2 for 2 of 2 trials" in out
    kind, built = tuners[-1]
    assert kind == "new" and built["tune_config"].max_concurrent_trials == 1  # restore would keep the old config
    assert built["param_space"]["base"]["logging"]["checkpoint_every"] == 2
    record = read_record(results / "tiny")
    assert record is not None and record.max_concurrent == 1
    assert pd.read_parquet(results / "tiny" / "rounds").sort_values(["seed", "round"]).reset_index(drop=True) \
        .equals(rows.sort_values(["seed", "round"]).reset_index(drop=True))  # finished trials: nothing redone

    assert sweep_cli.main([*common, "train.rounds=1", "logging.checkpoint_every=2", "--max-concurrent", "1",
                           "--resume"]) == 0
    assert tuners[-1][0] == "restore"  # nothing changed: Tune's own experiment is restored


def driver_actors() -> int:
    """Driver actors this Ray session has started, alive or dead (one per trial launched)."""
    import ray

    return sum(actor["ActorClassName"] == "Driver" for actor in ray._private.state.actors().values())


def named(**fields) -> TrialConfig:
    return TrialConfig.from_dict({"name": "mine", "data": {"dataset": "synthetic"}, **fields})


def test_a_named_trial_whose_config_changed_is_refused_naming_the_field():
    started = SweepRecord.of("s", "s.yaml", {}, [named(train={"lr": 0.1})], max_concurrent=None, max_failures=0)
    now = SweepRecord.of("s", "s.yaml", {"train.lr": 0.3}, [named(train={"lr": 0.3})], max_concurrent=None,
                         max_failures=2)
    with pytest.raises(SweepError, match=r"^train.lr=0.3 changes train.lr of 1 of the 1 trials"):
        check_resume(started, now)
    honored = SweepRecord.of("s", "s.yaml", {}, [named(train={"lr": 0.1}, resources={"num_workers": 3})],
                             max_concurrent=None, max_failures=2)
    assert check_resume(started, honored) == [
        "--max-failures 2 (the run started with 0)",
        "resources.num_workers=3 for 1 of 1 trials (the unfinished ones continue with it)"]


def test_the_record_reads_back_as_written_from_a_uri(tmp_path):
    record = SweepRecord.of("s", "s.yaml", {"model.gamma": None}, [named()], max_concurrent=3, max_failures=1)
    record.write(f"file://{tmp_path}/s")
    assert read_record(f"file://{tmp_path}/s") == record
    assert read_record(tmp_path / "s") == record
    assert read_record(tmp_path / "none") is None


def test_a_sweep_recorded_before_train_precision_existed_resumes_as_fp32(tmp_path):
    record = SweepRecord.of("s", "s.yaml", {}, [named()], max_concurrent=None, max_failures=0)
    old = dataclasses.replace(record, trials={n: {k: v for k, v in flat.items() if k != "train.precision"}
                                              for n, flat in record.trials.items()})
    old.write(tmp_path)
    assert check_resume(read_record(tmp_path), record) == []
    with pytest.raises(SweepError, match=r"^train.precision changes train.precision of 1 of the 1 trials"):
        check_resume(read_record(tmp_path), SweepRecord.of("s", "s.yaml", {}, [named(train={"precision": "bf16"})],
                                                           max_concurrent=None, max_failures=0))
