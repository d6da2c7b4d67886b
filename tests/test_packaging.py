"""The package as pip installs it: the console scripts, and the studies shipped inside it.

The wheel is built from a copy of this checkout (``pip wheel --no-build-isolation``: no network; a copy, because
setuptools builds in the source's own build/ folder, which two test processes building at once would share)
and installed into a
scratch directory, which then comes first on ``PYTHONPATH``, so the commands below run the installed copy,
from a directory that has no ``sweeps/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LEFT_OUT = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "results", "wandb", "*.egg-info", "__pycache__",
                                  ".pytest_cache", ".mypy_cache", ".ruff_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = shutil.copytree(REPO, tmp_path_factory.mktemp("source") / "fedpara-runner", ignore=LEFT_OUT)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(out)], check=True, cwd=out)
    [built] = out.glob("fedpara_runner-*.whl")
    return built


def test_the_wheel_holds_every_package_every_sweep_file_and_the_c_source(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in [*REPO.glob("runner/**/__init__.py"), *REPO.glob("models/**/__init__.py"),
                 *REPO.glob("partitions/**/__init__.py")]:
        assert init.relative_to(REPO).as_posix() in names  # a new sub-package must be listed in pyproject.toml
    shipped = sorted(p.name for p in (REPO / "sweeps").glob("*.yaml"))
    assert len(shipped) >= 6
    with zipfile.ZipFile(wheel) as archive:
        for name in shipped:
            assert archive.read(f"runner/sweeps/{name}") == (REPO / "sweeps" / name).read_bytes()
        source = "runner/engine/exact_sum_kernel.c"  # compiled where the package runs
        assert archive.read(source) == (REPO / source).read_bytes()
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    assert "fedpara-sweep = runner.sweep:main" in scripts and "fedpara-plot = runner.plot:main" in scripts


def test_the_installed_console_script_runs_a_shipped_study_from_any_directory(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([str(site / "bin" / "fedpara-sweep"), "quickstart", "train.rounds=2", "--dry-run",
                           "--results", str(tmp_path / "results")],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"sweep quickstart ({site / 'runner' / 'sweeps' / 'quickstart.yaml'}): 4 trials" in done.stdout
    usage = subprocess.run([str(site / "bin" / "fedpara-plot"), "--help"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=120)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: fedpara-plot")
