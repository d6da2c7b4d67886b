"""The offline bundle (runner/bundle.py): what it leaves out, its launcher, and a real bundle that runs."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from runner import bundle

ROOT = Path(__file__).resolve().parent.parent
THIS_PYTHON = "{}.{}".format(*sys.version_info[:2])


def test_a_package_is_left_out_by_name_or_only_at_the_pinned_version(tmp_path):
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("# the target's pip freeze\nNumPy==2.4.6\ntyping_extensions\n-e git+https://x#egg=y\n\n")
    have = bundle.read_have_file(freeze)
    assert have == {"numpy": "2.4.6", "typing-extensions": None}
    resolved = [("numpy", "2.4.6"), ("typing-extensions", "4.16.0"), ("pyarrow", "26.0.1"), ("ray", "2.60.0")]
    assert bundle.left_out(resolved, {**have, "pyarrow": "20.0.0"}) == {"numpy", "typing-extensions"}


def test_a_bad_have_file_line_is_named(tmp_path):
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("numpy==2.4.6\n(from somewhere)\n")
    with pytest.raises(bundle.BundleError, match=r"freeze.txt, line 2: .*'\(from somewhere\)'"):
        bundle.read_have_file(freeze)


def test_wheel_file_names_match_their_distribution():
    assert bundle._wheel_is("typing_extensions-4.16.0-py3-none-any.whl", "typing-extensions", "4.16.0")
    assert not bundle._wheel_is("typing_extensions-4.15.0-py3-none-any.whl", "typing-extensions", "4.16.0")
    assert not bundle._wheel_is("ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl", "raylet", "2.60.0")


def run_bundle(path: Path, *command: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(["sh", str(path), *command], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=600)


def test_the_launcher_unpacks_once_checks_the_python_and_puts_the_site_first(tmp_path):
    site = tmp_path / "site"
    (site / "bundled_hello").mkdir(parents=True)
    (site / "bundled_hello" / "__init__.py").write_text("WORD = 'from the bundle'\n")
    (site / "bin").mkdir()
    tool = site / "bin" / "bundled-tool"
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)
    out = tmp_path / "dist" / "b.sh"
    bundle.pack(site, out, THIS_PYTHON, "manylinux_2_28_x86_64", 1, preset=0)
    unpacked = tmp_path / "unpacked"
    env = {"FEDPARA_OFFLINE_DIR": str(unpacked), "FEDPARA_PYTHON": sys.executable}

    done = run_bundle(out, sys.executable, "-c", "import bundled_hello; print(bundled_hello.WORD)", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "from the bundle"
    assert (unpacked / ".complete").exists()
    assert run_bundle(out, "bundled-tool", env=env).stdout.strip() == "tool ran"  # site/bin on PATH, mode kept

    (unpacked / "site" / "bundled_hello" / "__init__.py").write_text("WORD = 'unpacked once'\n")
    again = run_bundle(out, sys.executable, "-c", "import bundled_hello; print(bundled_hello.WORD)", env=env)
    assert again.stdout.strip() == "unpacked once"  # not unpacked a second time

    other = f"3.{sys.version_info[1] + 1}"
    wrong = tmp_path / "dist" / "wrong.sh"
    bundle.pack(site, wrong, other, "manylinux_2_28_x86_64", 1, preset=0)
    refused = run_bundle(wrong, sys.executable, "-c", "print('ran')",
                         env={**env, "FEDPARA_OFFLINE_DIR": str(tmp_path / "u2")})
    assert refused.returncode == 2 and "ran" not in refused.stdout
    assert f"built for Python {other}, but {sys.executable} is {THIS_PYTHON}" in refused.stderr


def test_a_bad_python_version_is_refused_before_anything_is_downloaded(tmp_path):
    with pytest.raises(bundle.BundleError, match=r"--python: a version such as 3.12, got '312'"):
        bundle.build("312", tmp_path / "b.sh", {})


@pytest.mark.slow
def test_a_real_bundle_for_this_python_imports_ray_and_the_runner_and_runs_the_quickstart(tmp_path):
    """Everything this interpreter has is 'on the target' except Ray: the bundle carries Ray (from pip's
    cache, as installed) and the runner; run from a folder that is not the checkout, both come from it."""
    freeze = tmp_path / "target-freeze.txt"
    freeze.write_text("\n".join(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                                if bundle.canonical(d.metadata["Name"]) not in ("ray", "fedpara-runner")))
    out = tmp_path / "fedpara-offline.sh"
    made = bundle.build(THIS_PYTHON, out, bundle.read_have_file(freeze), preset=0)
    assert [name for name, _ in made["packages"]] == ["ray"]  # type: ignore[union-attr]
    assert out.stat().st_size / 2**20 == pytest.approx(made["bundle_mib"])

    unpacked, elsewhere = tmp_path / "unpacked", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"FEDPARA_OFFLINE_DIR": str(unpacked), "FEDPARA_PYTHON": sys.executable, "WANDB_MODE": "offline",
           "PYTHONPATH": ""}
    where = run_bundle(out, sys.executable, "-c", "import ray, runner; print(ray.__file__); print(runner.__file__)",
                       env=env, cwd=elsewhere)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(unpacked / "site")) for line in where.stdout.split()), where.stdout
    assert not (unpacked / "site" / "ray" / "rllib").exists()
    assert os.access(unpacked / "site" / "ray" / "core" / "src" / "ray" / "raylet" / "raylet", os.X_OK)

    sweep = run_bundle(out, sys.executable, "-m", "runner.sweep", str(ROOT / "sweeps" / "quickstart.yaml"),
                       "train.rounds=1", "logging.wandb=disabled", "--results", str(tmp_path / "results"),
                       env=env, cwd=elsewhere)
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    rows = sorted((tmp_path / "results" / "quickstart" / "rounds").glob("*.parquet"))
    assert len(rows) == 4
