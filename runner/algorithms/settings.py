"""The settings of an algorithm that reads none.

An algorithm declares what it reads as a frozen ``Settings`` dataclass whose fields carry their rules
(:func:`runner.settings.setting`); the config builds it from the ``algorithm`` section, refusing a key the named
algorithm does not read, and checks each field once, naming it (``algorithm.mu: must be >= 0, got -1``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NoSettings:
    """The settings of an algorithm that reads none."""
