"""Opening a trial's W&B run leaves the process's WANDB_MODE as it found it."""

from __future__ import annotations

import os

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

