"""How the runner's own log messages reach a command line's terminal.

Library code logs (``logging.getLogger(__name__)``); only the command lines (``runner.sweep``,
``runner.plot``, ``runner.probe``) print. A command line calls :func:`show_library_logs` once so that the
runner's warnings and notes appear on stderr as plain lines, without touching Ray's or W&B's loggers.
"""

from __future__ import annotations

import logging
import sys
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
