"""The README's Jobs API lines, walked against a head started as a user starts one (``ray start --head``, with
its job server): the job joins the cluster it runs on (not "this machine"), its rows keep the submitted code
version, and they are read back from the absolute --results the README asks for."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from local_cluster import ROOT, free_port
from tiny_sweep import write_tiny_sweep

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).parent / "ray")


@contextlib.contextmanager
def head_with_job_server():
    """A head under its own temporary directory (never the machine's current cluster), stopped with its group."""
    tmp = Path(tempfile.mkdtemp(prefix="rj-", dir="/tmp"))  # short: Ray's socket paths must stay short
    dashboard = free_port()
    # token authentication as Ray 2.60 turns it on where ~/.ray/auth_token exists: one token for head and CLI
    env = {**os.environ, "RAY_TMPDIR": str(tmp), "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    head = subprocess.Popen([RAY, "start", "--head", "--block", f"--port={free_port()}", "--num-cpus=2",
                             "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                             # the job agent's port too: another Ray on this machine (the session's) holds the default
                             f"--dashboard-agent-listen-port={free_port()}",
                             f"--temp-dir={tmp}"], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                head.wait(wait)
                break


def test_a_job_submitted_the_readmes_way_runs_on_its_cluster_and_keeps_the_code_version(tmp_path):
    sweep_file = write_tiny_sweep(tmp_path / "tiny.yaml", "tiny")
    results = tmp_path / "results"
    runtime_env = json.dumps({"env_vars": {"FEDPARA_CODE_VERSION": "abc1234-dirty", "WANDB_MODE": "disabled"}})
    with head_with_job_server() as (address, env):
        submit = [RAY, "job", "submit", "--address", address, "--submission-id", "tiny-1", "--working-dir", str(ROOT),
                  "--runtime-env-json", runtime_env, "--", sys.executable, "-m", "runner.sweep", str(sweep_file),
                  "train.rounds=1", "--results", str(results), "--no-plot"]
        deadline = time.monotonic() + 180
        while True:  # the head and its job agent take a while to come up
            done = subprocess.run(submit, cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)
            if done.returncode == 0 or "tiny-1" in done.stdout or time.monotonic() > deadline:
                break
            time.sleep(3)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "Ray: the cluster this Ray job runs on" in log
    rows = pd.read_parquet(results / "tiny" / "rounds")
    assert sorted(rows.groupby("seed")["round"].max().items()) == [(0, 1), (1, 1)]
    assert set(rows["code_commit"]) == {"abc1234"} and set(rows["code_dirty"]) == {True}
