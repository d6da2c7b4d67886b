"""What the sweep process decides once and hands to every trial, wherever Ray runs it.

A trial process on a GPU node has neither the environment nor the files of the node where the sweep
started: no ``WANDB_API_KEY``, no netrc, maybe no git checkout. So the sweep resolves the W&B mode (with
its key) and reads the code version once, and Tune passes this object to every trial through Ray's object
store (``tune.with_parameters``). Not through the trial's config, which Tune writes to its experiment
directory, nor through the runtime environment, whose variables Ray's runtime-env agent writes to its log.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.provenance import CodeVersion
from runner.study.wandb_access import WandbAccess, resolve_access


@dataclass(frozen=True)
class SweepContext:
    wandb: WandbAccess
    code: CodeVersion

    @classmethod
    def here(cls) -> SweepContext:
        """Decide from this process: W&B credentials and mode (for ``logging.wandb: auto``), the code version."""
        return cls(resolve_access("auto"), CodeVersion.of_checkout())
