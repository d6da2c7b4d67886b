"""Opening a trial's W&B run leaves the process's WANDB_MODE as it found it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.config import TrialConfig
from runner.study.wandb_access import WandbAccess, resolve_access
from runner.study.wandb_run import open_run

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.mark.parametrize("before", [None, "disabled"])
def test_a_trial_s_mode_does_not_leak_into_the_next_trial(tmp_path, monkeypatch, before):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no netrc
    if before is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", before)
    cfg = TrialConfig.from_dict({"logging": {"results_dir": str(tmp_path), "wandb": "offline"}, "sweep": "unit"})
    run = open_run(cfg, WandbAccess("offline", "test"), run_id="leak0test", resume="never", config=cfg.flat())
    run.finish()
    assert list((tmp_path / "wandb").glob("offline-run-*/run-leak0test.wandb"))  # the run really was offline
    assert os.environ.get("WANDB_MODE") == before
    assert resolve_access("auto").mode == (before or "offline")


def test_a_fresh_trial_gets_a_fresh_run_and_a_resumed_one_its_own(tmp_path):
    """The W&B sink alone, as a trial opens it: fresh (no checkpoint) or resuming after round 1."""
    import shutil

    from runner.study.results import RoundsTable, rounds_path
    from runner.study.wandb_run import WandbRun

    def open_and_close(results: Path, resumed_after: int) -> str:
        cfg = TrialConfig.from_dict({"logging": {"results_dir": str(results), "wandb": "offline"}, "sweep": "unit",
                                     "train": {"rounds": 3}, "name": "t"})
        sink = WandbRun(cfg, WandbAccess("offline", "test"), RoundsTable(rounds_path(results, "t")))
        sink.open(resumed_after, {})
        sink.close(completed=False)
        return (results / "trials" / "t" / "wandb_run_id").read_text()

    first = open_and_close(tmp_path / "a", 0)
    assert open_and_close(tmp_path / "a", 1) == first  # resumed from its checkpoint: the same run
    assert open_and_close(tmp_path / "b", 0) != first  # a new --results: a new run
    shutil.rmtree(tmp_path / "a" / "trials")           # make clean, as far as the trial can tell (its checkpoint
    again = open_and_close(tmp_path / "a", 0)          # and run id are gone; W&B may still be writing its logs)
    assert again != first
    # W&B names each offline run's file after its id (run-<id>.wandb); its records may still be in flight
    ids = {f.stem.removeprefix("run-") for f in (tmp_path / "a").glob("wandb/offline-run-*/run-*.wandb")}
    assert ids == {first, again}
