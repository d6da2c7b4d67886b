"""Which code made a result: the git commit and whether the tree was dirty, and the versions of the runner,
torch and Ray, so that a figure can be traced to the code that drew it.

The commit is read once, in the process that starts a sweep (``git`` on this package's own checkout, or
``FEDPARA_CODE_VERSION`` where the code was copied without ``.git``), and handed to every trial: a trial
process on another node may have no checkout at all. The library versions are those of the process that
ran the trial.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ENV_VAR = "FEDPARA_CODE_VERSION"  # "<commit>" or "<commit>-dirty", e.g. `git describe --always --dirty`
UNKNOWN = "unknown"
DIRTY_SUFFIX = "-dirty"
CHECKOUT = Path(__file__).resolve().parents[1]  # the directory holding runner/, models/, partitions/
GIT_TIMEOUT_S = 10


@dataclass(frozen=True)
class CodeVersion:
    commit: str = UNKNOWN       # a git commit (or whatever FEDPARA_CODE_VERSION names), or "unknown"
    dirty: bool | None = None   # uncommitted changes in the checkout; None when unknown

    @property
    def text(self) -> str:
        """How it is written in FEDPARA_CODE_VERSION and shown: ``<commit>`` or ``<commit>-dirty``."""
        return self.commit + (DIRTY_SUFFIX if self.dirty else "")

    @classmethod
    def parse(cls, text: str) -> CodeVersion:
        text = text.strip()
        if not text or text == UNKNOWN:
            return cls()
        if text.endswith(DIRTY_SUFFIX):
            return cls(text[: -len(DIRTY_SUFFIX)], True)
        return cls(text, False)

    @classmethod
    def of_checkout(cls, checkout: Path = CHECKOUT) -> CodeVersion:
        """FEDPARA_CODE_VERSION when set; else git on ``checkout`` (only when it is the top of a git tree, not a
        directory inside some other repository); else unknown."""
        if os.environ.get(ENV_VAR):
            return cls.parse(os.environ[ENV_VAR])
        top = _git(checkout, "rev-parse", "--show-toplevel")
        if top is None or Path(top).resolve() != checkout.resolve():
            return cls()
        commit = _git(checkout, "rev-parse", "HEAD")
        status = _git(checkout, "status", "--porcelain")
        if commit is None:
            return cls()
        return cls(commit, None if status is None else bool(status))


def _git(checkout: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):  # no git on this machine
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def library_versions() -> dict[str, str]:
    """The versions this process runs with: the runner (fedpara-runner's installed metadata), torch and Ray."""
    import ray
    import torch

    try:
        runner = metadata.version("fedpara-runner")
    except metadata.PackageNotFoundError:
        runner = UNKNOWN
    return {"runner_version": runner, "torch_version": str(torch.__version__), "ray_version": ray.__version__}


def provenance(code: CodeVersion) -> dict[str, Any]:
    """The columns every result row carries and the entries every W&B run's config holds."""
    return {"code_commit": code.commit, "code_dirty": code.dirty, **library_versions()}
