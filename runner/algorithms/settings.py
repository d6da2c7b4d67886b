"""How an algorithm declares the settings it reads: a frozen dataclass whose fields carry their rules.

The config (``runner.config``) builds an algorithm's ``Settings`` from the ``algorithm`` section and checks
each field's rule once, naming the field; a key that the named algorithm does not read is refused there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def setting(default: Any, check: Callable[[Any], bool], rule: str) -> Any:
    """A settings field with the rule its values must follow (``algorithm.mu: must be >= 0, got -1``)."""
    return dataclasses.field(default=default, metadata={"check": check, "rule": rule})


def broken_rules(settings: Any) -> list[tuple[str, str, Any]]:
    """(field, rule, value) for each field of a settings dataclass whose value breaks its rule."""
    return [(f.name, f.metadata["rule"], getattr(settings, f.name)) for f in dataclasses.fields(settings)
            if "check" in f.metadata and not f.metadata["check"](getattr(settings, f.name))]


@dataclass(frozen=True)
class NoSettings:
    """The settings of an algorithm that reads none."""
