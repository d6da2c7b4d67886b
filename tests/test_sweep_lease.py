"""One run of a sweep at a time (runner/study/sweep_lease.py): a second run is refused naming the first; the
lease of a run that crashed expires, or is taken over at once when its process on this host is gone.

Leases here live a few seconds or less, so the tests wait a second or two at most; on a local path and on S3."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_sweep import write_tiny_sweep

from runner import sweep as sweep_cli
from runner.engine.storage import Location
from runner.study.sweep_lease import LEASE_NAME, Holder, SweepLease, SweepRunning

TTL_S = 0.6       # a lease nobody renews: how long a start waits before it takes it over
LIVE_TTL_S = 3.0  # a lease renewed from a thread: long enough for renewals on a loaded machine and S3


def quick(where, said: list[str] | None = None, ttl_s: float = TTL_S) -> SweepLease:
    return SweepLease(where, ttl_s=ttl_s, settle_s=0.05, say=(said if said is not None else []).append)


@pytest.fixture(params=["local", "s3"])
def results(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "sweep")
    return f"{request.getfixturevalue('s3_bucket')}/lease-{tmp_path.name}/sweep"


def test_a_second_run_is_refused_naming_the_running_one_until_it_ends(results):
    first = quick(results, ttl_s=LIVE_TTL_S)
    with first.held():
        time.sleep(LIVE_TTL_S / 2)  # it renews meanwhile
        second = quick(results, ttl_s=LIVE_TTL_S)
        started = time.monotonic()
        with pytest.raises(SweepRunning) as refused:
            second.acquire()
        assert time.monotonic() - started < LIVE_TTL_S  # told once the first renews, not after a whole TTL
        held = first.read()
        assert held is not None and held.token == first.mine.token and held.renewals >= 1
    assert str(refused.value).startswith(
        f"this sweep is already running (host {socket.gethostname()}, pid {os.getpid()}, "
        f"started {first.mine.started}; it renewed its lease while this run waited)")
    assert not (Location(results) / LEASE_NAME).exists()  # released at the end
    with second.held():
        assert second.read() == second.mine


def write_lease(results: str, host: str, pid: int) -> Holder:
    holder = Holder(host, pid, "2026-12-04T03:00:00+00:00", "a-run-that-was-killed")
    (Location(results) / LEASE_NAME).write_bytes(json.dumps(holder.__dict__).encode())
    return holder


def test_the_lease_of_a_run_killed_on_another_node_expires_and_is_taken_over(results):
    write_lease(results, "node-that-was-lost", 4242)
    said: list[str] = []
    lease = quick(results, said)
    started = time.monotonic()
    lease.acquire()
    assert TTL_S <= time.monotonic() - started < TTL_S + 2
    assert lease.read() == lease.mine
    assert said[-1].endswith(f"not renewed for {TTL_S:g} s, so its run (host node-that-was-lost, pid 4242, "
                             "started 2026-12-04T03:00:00+00:00) is gone; taking it over")
    lease.release()


def test_the_lease_of_a_killed_process_on_this_host_is_taken_over_at_once(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_lease(str(tmp_path), socket.gethostname(), int(ended.stdout))
    said: list[str] = []
    lease = SweepLease(tmp_path, ttl_s=300, settle_s=0.05, say=said.append)
    started = time.monotonic()
    lease.acquire()
    assert time.monotonic() - started < 5  # not the 300 s of its lease
    assert "has ended without releasing it; taking it over" in said[0]
    assert lease.read() == lease.mine


def test_a_sweep_started_while_it_runs_elsewhere_is_refused_before_it_starts_ray(tmp_path, capsys, monkeypatch):
    import runner.study.tune_sweep as tune_sweep

    def must_not_run(*args, **kwargs):
        raise AssertionError("the refused run reached Tune")

    monkeypatch.setattr(tune_sweep, "run_tune", must_not_run)
    sweep_file = write_tiny_sweep(tmp_path / "small.yaml", "small")
    running = quick(tmp_path / "results" / "small", ttl_s=LIVE_TTL_S)
    with running.held():
        code = sweep_cli.main([str(sweep_file), "--results", str(tmp_path / "results"), "--no-plot", "--resume"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"error: this sweep is already running (host {socket.gethostname()}, pid {os.getpid()}, " \
           f"started {running.mine.started};" in err
    assert sorted(p.name for p in Path(tmp_path / "results" / "small").iterdir()) == []  # nothing written
