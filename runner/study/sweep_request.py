"""What one ``runner.sweep`` command asks for, typed: the command line's arguments, parsed once and handed to the
study layer (runner/study/sweep_run.py), which never sees argparse."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from runner.console import command_name
from runner.study.console_view import DEFAULT_EVERY_S

DEFAULT_SWEEP = Path("sweeps/quickstart.yaml")
DEFAULT_RESULTS = "results"


@dataclass(frozen=True)
class SweepRequest:
    """A sweep file, its overrides and how to run it (``results``: the root as given; None for the default)."""

    sweep_file: Path = DEFAULT_SWEEP
    overrides: tuple[str, ...] = ()
    address: str | None = None
    results: str | None = None
    max_concurrent: int | None = None
    max_failures: int = 0
    progress_every_s: float = DEFAULT_EVERY_S
    dry_run: bool = False
    resume: bool = False
    plot: bool = True

    def with_results(self, results: str) -> SweepRequest:
        return replace(self, results=results)

    def resume_command(self) -> str:
        """The command line that continues this sweep."""
        return " ".join([command_name("runner.sweep"), str(self.sweep_file), *self.overrides, "--results",
                         str(self.results if self.results is not None else DEFAULT_RESULTS), "--resume"])
