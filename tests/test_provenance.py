"""The code version a result records: git's commit and dirty flag, FEDPARA_CODE_VERSION, or "unknown"."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import ray
import torch

from runner import provenance
from runner.provenance import CodeVersion


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A git checkout with one commit, standing in for the runner's own."""
    monkeypatch.delenv(provenance.ENV_VAR, raising=False)
    repo = tmp_path / "checkout"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    return repo


def test_commit_and_dirty_flag_come_from_git(checkout):
    head = git(checkout, "rev-parse", "HEAD")
    assert CodeVersion.of_checkout(checkout) == CodeVersion(head, False)
    (checkout / "code.py").write_text("x = 2\n")
    assert CodeVersion.of_checkout(checkout) == CodeVersion(head, True)
    assert CodeVersion.of_checkout(checkout).text == f"{head}-dirty"


def test_without_git_or_a_checkout_of_its_own_the_version_is_unknown(checkout, tmp_path, monkeypatch):
    inside = checkout / "site-packages"  # e.g. installed into a virtual environment inside another repository
    inside.mkdir()
    assert CodeVersion.of_checkout(inside) == CodeVersion("unknown", None)
    assert CodeVersion.of_checkout(tmp_path / "elsewhere") == CodeVersion("unknown", None)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no git on this machine
    assert CodeVersion.of_checkout(checkout) == CodeVersion("unknown", None)


def test_fedpara_code_version_names_code_copied_without_git(checkout, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    monkeypatch.setenv(provenance.ENV_VAR, "9f3c2e1-dirty")
    assert CodeVersion.of_checkout(checkout) == CodeVersion("9f3c2e1", True)
    monkeypatch.setenv(provenance.ENV_VAR, "v0.1.0")
    assert CodeVersion.of_checkout(checkout) == CodeVersion("v0.1.0", False)


def test_the_columns_name_the_code_and_the_libraries():
    columns = provenance.provenance(CodeVersion("abc", True))
    assert columns == {"code_commit": "abc", "code_dirty": True, "runner_version": columns["runner_version"],
                       "torch_version": str(torch.__version__), "ray_version": ray.__version__}
    assert columns["runner_version"] != ""
