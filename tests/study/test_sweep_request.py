"""runner.sweep reads its command line into a typed SweepRequest and nothing more; the command it prints to
resume a sweep reads back into the same request, asking to resume."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

from runner.study.sweep_request import DEFAULT_SWEEP, SweepRequest
from runner.sweep import parse_args


def test_arguments_become_a_typed_request() -> None:
    request = parse_args(["sweeps/fig4.yaml", "train.rounds=2", "--results", "/tmp/r", "--max-concurrent", "3",
                          "model.gamma=0.5", "--no-plot", "--progress-every", "5"])
    assert request == SweepRequest(sweep_file=Path("sweeps/fig4.yaml"), overrides=("train.rounds=2", "model.gamma=0.5"),
                                   results="/tmp/r", max_concurrent=3, progress_every_s=5.0, plot=False)


def test_only_overrides_means_the_default_sweep() -> None:
    request = parse_args(["train.rounds=1", "--dry-run"])
    assert (request.sweep_file, request.overrides, request.dry_run) == (DEFAULT_SWEEP, ("train.rounds=1",), True)


def test_the_resume_command_reads_back_as_the_same_request_resuming() -> None:
    request = parse_args(["sweeps/quickstart.yaml", "train.rounds=2", "--results", "/tmp/somewhere"])
    command = shlex.split(request.resume_command())
    assert command[:3] == ["python", "-m", "runner.sweep"] or command[0] == "fedpara-sweep"
    arguments = command[3:] if command[0] == "python" else command[1:]
    assert parse_args(arguments) == replace(request, resume=True)
