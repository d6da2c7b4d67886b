"""How the runner's own log messages reach a command line's terminal.

Library code logs (``logging.getLogger(__name__)``); only the command lines (``runner.sweep``,
``runner.plot``, ``runner.probe``) print. A command line calls :func:`show_library_logs` once so that the
runner's warnings and notes appear on stderr as plain lines, without touching Ray's or W&B's loggers.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGES = ("runner", "models", "partitions")


def show_library_logs(level: int = logging.INFO) -> None:
    """Send the project's log records at ``level`` and above to stderr, once per process."""
    for name in PACKAGES:
        logger = logging.getLogger(name)
        if not any(getattr(h, "_runner_console", False) for h in logger.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(message)s"))
            handler._runner_console = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
        logger.setLevel(level)


def command_name(module: str) -> str:
    """How the user called a command line: its console script (``fedpara-sweep``), or ``python -m <module>``."""
    called = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return called if called.startswith("fedpara-") else f"python -m {module}"


@contextmanager
def stopping_says(how_to_resume: str) -> Iterator[None]:
    """While a sweep runs, SIGTERM (what `ray job stop` and most schedulers send) first prints how to resume,
    then stops the sweep as Ctrl+C does (Tune saves its state and returns); a Ctrl+C outside Tune's loop ends in
    the same line instead of a traceback. `ray job stop` kills the process a few seconds later, so the line is
    printed before anything else. Enter it after ``ray.init``, whose own SIGTERM handler exits mid-loop."""
    def on_term(signum: int, frame: object) -> None:
        print(f"stopped ({signal.Signals(signum).name}); finished rounds and checkpoints are kept. "
              f"Resume with: {how_to_resume}", file=sys.stderr, flush=True)
        signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, on_term)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)  # Tune installs its own while it runs
    try:
        yield
    except KeyboardInterrupt:
        print(f"stopped; finished rounds and checkpoints are kept. Resume with: {how_to_resume}", file=sys.stderr,
              flush=True)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
