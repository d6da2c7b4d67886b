"""Shared fixtures: one local Ray instance for the whole session, W&B offline, a local S3 bucket."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import types

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# One intra-op thread in the test process (and the Ray it starts): its models are small, and two threads
# contending with the trials' own processes on a 2-core machine spent 3x the CPU for the same steps.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def ray_session():
    """A 2-CPU local Ray started once; trials use fractional CPUs so a driver and workers fit."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def s3_bucket():
    """A bucket on moto's S3 server at 127.0.0.1; pyarrow finds it through AWS_ENDPOINT_URL."""
    moto_server = pytest.importorskip("moto.server", reason="moto is in the dev extra: pip install -e '.[dev]'")
    import pyarrow.fs as pafs

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    settings = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http",
                      allow_bucket_creation=True).create_dir("results")
    yield "s3://results"
    server.stop()
    for key, value in saved.items():
        os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="session")
def finished_tiny_sweep(ray_session, tmp_path_factory):
    """The tiny sweep (tests/tiny_sweep.py) run once through the command line on the session's Ray, with
    ``train.rounds=1`` and a progress block at every report: its file, results, what it printed and how it
    built its Tuner. The console view reads what it printed; the resume test continues its results.

    Run once for the whole ``make test`` even with two test processes (~30 CPU-s): the first that needs it runs it
    under a lock in the folder the processes share and saves what it printed; the other reads that. Only the
    resume test changes the results, and only after reading what it needs, so sharing them is safe."""
    from tiny_sweep import spy_on_tuners, write_tiny_sweep

    from runner import sweep as sweep_cli

    worker = os.environ.get("PYTEST_XDIST_WORKER")  # xdist: the base folder's parent is this run's, shared
    shared = tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.mktemp("shared")
    root, lock = shared / "tiny-sweep", shared / "tiny-sweep.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # released when closed
        saved = root / "printed.json"
        if saved.exists():
            run = json.loads(saved.read_text())
        else:
            root.mkdir()
            sweep_file = write_tiny_sweep(root / "tiny.yaml", "tiny")
            printed = io.StringIO()
            with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed), \
                    contextlib.redirect_stderr(printed):
                tuners = spy_on_tuners(patch)
                code = sweep_cli.main([str(sweep_file), "--results", str(root / "results"), "--no-plot",
                                       "--progress-every", "0", "train.rounds=1"])
            run = {"code": code, "output": printed.getvalue(), "tuners": [kind for kind, _ in tuners]}
            saved.write_text(json.dumps(run))
    return types.SimpleNamespace(code=run["code"], sweep_file=root / "tiny.yaml", results=root / "results",
                                 output=run["output"], tuners=[(kind, {}) for kind in run["tuners"]])


@pytest.fixture(scope="module")
def bench_module():
    """Import a script of bench/ by name, as its scripts import each other (bench/ is not a package)."""
    import importlib
    import pathlib
    import sys

    bench = str(pathlib.Path(__file__).resolve().parents[1] / "bench")
    sys.path.insert(0, bench)
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(bench)
