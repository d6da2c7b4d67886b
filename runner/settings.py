"""One way to declare and check a typed setting: a dataclass field that carries its own rule.

Every configuration section (runner/config.py), each algorithm's ``Settings``, the upload, and a sweep file's
``search:`` section are frozen dataclasses whose fields are declared with :func:`setting` (a bound, a list of
choices). :func:`build` turns the raw mapping a user wrote (YAML, a Tune config) into such a dataclass, once, at
the edge: it refuses unknown keys, checks each value against its annotation and its rule, and raises
:class:`ConfigError` starting with the dotted path of the bad value (``train.lr: must be > 0, got -1``). Rules
that relate two fields are not declared on a field: each caller keeps its own in one function.
:func:`json_schema` hands the same declarations to editors that check sweep files.

A section whose written shape is not its fields (the flat ``algorithm:`` keyed by its name, a search domain
``{loguniform: [0.01, 0.3]}``) builds itself: a class with ``from_raw(raw, path)`` (and ``json_schema()``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Choices = tuple[str, ...] | Callable[[], Iterable[str]]


class ConfigError(ValueError):
    """A configuration value is wrong; the message starts with the dotted field name."""


@dataclass(frozen=True)
class Rule:
    """What a setting's value must satisfy beyond its type; ``None`` (where the type allows it) always does."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: Choices | None = None  # a callable is asked when checking: a registry may grow after import
    nonempty: bool = False
    why: str = ""  # what the value means, said after the rule: "must be in (0, 1] (a share of ...), got 2"

    def options(self) -> tuple[str, ...]:
        if self.choices is None:
            return ()
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def text(self) -> str:
        """The rule as an error message says it (``must be in [0, 1)``); empty for a rule without bounds."""
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else ""
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else ""
        rule = (f"must be in {low}, {high}" if low and high
                else f"must be {'>=' if low[0] == '[' else '>'} {low[1:]}" if low
                else f"must be {'<=' if high[-1] == ']' else '<'} {high[:-1]}" if high
                else "must not be empty" if self.nonempty else "")
        return f"{rule} ({self.why})" if rule and self.why else rule

    def broken(self, value: Any, written: Any) -> str | None:
        """Why ``value`` breaks the rule (``written`` as the user wrote it), or None when it keeps it."""
        if value is None:
            return None
        options = self.options()
        if options and value not in options:
            return f"unknown value {written!r} (choose from {', '.join(options)})"
        if ((self.ge is not None and not value >= self.ge) or (self.gt is not None and not value > self.gt)
                or (self.le is not None and not value <= self.le) or (self.lt is not None and not value < self.lt)
                or (self.nonempty and not value)):
            return f"{self.text()}, got {written!r}"
        return None


RULE = "rule"  # the key of a field's metadata that holds its Rule


def setting(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
            ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
            choices: Choices | None = None, nonempty: bool = False, why: str = "") -> Any:
    """A dataclass field with the rule its values follow (no default and no factory: the key is required)."""
    rule = Rule(ge=ge, gt=gt, le=le, lt=lt, choices=choices, nonempty=nonempty, why=why)
    return dataclasses.field(default=default, default_factory=default_factory, metadata={RULE: rule})


def rule_of(f: dataclasses.Field) -> Rule:
    return f.metadata.get(RULE) or Rule()


def hint_options(hint: Any) -> tuple[Any, ...]:
    """The types a field's annotation allows: the members of ``A | B``, or the one type."""
    return typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)


def joined(path: str, key: Any) -> str:
    """``joined("search", "samples")`` -> ``search.samples``; at the root the key alone."""
    return f"{path}.{key}" if path else str(key)


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints``, once per class: it evaluates every string annotation each time it is asked, and a
    sweep's trials are checked by the hundred."""
    return typing.get_type_hints(cls)


def build(cls: type, raw: Any, path: str = "") -> Any:
    """The dataclass ``cls`` from the mapping ``raw``, every value checked; errors name ``path.<field>``."""
    if hasattr(cls, "from_raw"):
        return cls.from_raw(raw, path)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {raw!r}")
    refuse_unknown(raw, [f.name for f in dataclasses.fields(cls)], path)
    hints = type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        dotted = joined(path, f.name)
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{dotted}: missing (expected {type_text(hints[f.name])})")
            continue
        value = check_value(hints[f.name], raw[f.name], dotted)
        broken = rule_of(f).broken(value, raw[f.name])
        if broken:
            raise ConfigError(f"{dotted}: {broken}")
        values[f.name] = value
    return cls(**values)


def refuse_unknown(raw: Mapping[Any, Any], known: Sequence[str], path: str) -> None:
    """A key of ``raw`` that is not one of ``known`` is a ConfigError naming it, the nearest known key, and all."""
    for key in raw:
        if key not in known:
            raise ConfigError(f"{joined(path, key)}: unknown key{did_you_mean(key, known)} "
                              f"(valid: {', '.join(sorted(known))})")


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_value(hint: Any, value: Any, dotted: str) -> Any:
    """``value`` as the annotation ``hint`` takes it (ints for floats too, a nested section built); anything
    else is a ConfigError naming ``dotted``."""
    options = hint_options(hint)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is Any:
            return value
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
        if isinstance(option, type) and (dataclasses.is_dataclass(option) or hasattr(option, "from_raw")):
            return build(option, value, dotted)
        if typing.get_origin(option) is dict:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{dotted}: expected a mapping, got {value!r}")
            key_type, value_type = typing.get_args(option)
            return {check_value(key_type, key, dotted): check_value(value_type, item, joined(dotted, key))
                    for key, item in value.items()}
    raise ConfigError(f"{dotted}: expected {type_text(hint)}, got {value!r}")


def type_text(hint: Any) -> str:
    names = []
    for option in hint_options(hint):
        if option is type(None):
            names.append("null")
        elif typing.get_origin(option) is dict or dataclasses.is_dataclass(option):
            names.append("a mapping")
        else:
            names.append(getattr(option, "__name__", str(option)))
    return " or ".join(names)


# ---- the same declarations as a JSON schema (for editors) ------------------------------------------------------

_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def json_schema(cls: type) -> dict[str, Any]:
    """A JSON schema (draft 2020-12) of what :func:`build` accepts for ``cls``: its keys, types and rules."""
    if hasattr(cls, "json_schema"):
        return dict(cls.json_schema())
    hints = type_hints(cls)
    properties = {f.name: field_schema(hints[f.name], rule_of(f), f) for f in dataclasses.fields(cls)}
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if cls.__doc__:
        schema["description"] = " ".join(cls.__doc__.split())
    return {**schema, "required": required} if required else schema


def field_schema(hint: Any, rule: Rule, f: dataclasses.Field | None = None) -> dict[str, Any]:
    """The schema of one value: its annotation's types, its bounds or choices, its default."""
    options = hint_options(hint)
    alternatives: list[dict[str, Any]] = []
    for option in options:
        if option in _JSON_TYPES:
            alternatives.append({"type": _JSON_TYPES[option]})
        elif option is Any:
            alternatives.append({})
        elif typing.get_origin(option) is dict:
            alternatives.append({"type": "object",
                                 "additionalProperties": field_schema(typing.get_args(option)[1], Rule())})
        elif isinstance(option, type):
            alternatives.append(json_schema(option))
    schema: dict[str, Any] = dict(alternatives[0]) if len(alternatives) == 1 else {"anyOf": alternatives}
    for key, bound in (("minimum", rule.ge), ("exclusiveMinimum", rule.gt), ("maximum", rule.le),
                       ("exclusiveMaximum", rule.lt)):
        if bound is not None:
            schema[key] = bound
    if rule.options():
        schema["enum"] = [*rule.options(), *([None] if type(None) in options else [])]
    if rule.nonempty:
        schema["minLength"] = 1
    if rule.why or rule.text():
        schema["description"] = rule.text() or rule.why
    if f is not None and f.default is not dataclasses.MISSING:
        schema["default"] = f.default
    return schema
