"""The one way a setting is declared and checked (runner/settings.py): keys, types and rules, each error
starting with the dotted path of the bad value."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from runner.settings import ConfigError, build, json_schema, setting

GROWING = ["a"]  # a registry that grows after the dataclass below is declared


@dataclass(frozen=True)
class Inner:
    share: float = setting(0.5, gt=0, le=1, why="a share")
    steps: int | None = setting(None, ge=1)


@dataclass(frozen=True, kw_only=True)
class Outer:
    count: int = setting(ge=1)  # required
    kind: str = setting("a", choices=lambda: tuple(GROWING))
    momentum: float = setting(0.0, ge=0, lt=1)
    label: str = setting("x", nonempty=True)
    inner: Inner = Inner()
    named: dict[str, Inner] | None = None


def error(raw) -> str:
    with pytest.raises(ConfigError) as caught:
        build(Outer, raw, "outer")
    return str(caught.value)


def test_values_are_built_with_their_types_and_defaults():
    built = build(Outer, {"count": 3, "inner": {"share": 1}, "named": {"x": {"steps": 2}}}, "outer")
    assert built == Outer(count=3, inner=Inner(share=1.0), named={"x": Inner(steps=2)})
    assert isinstance(built.inner.share, float)  # an int where a float is declared becomes one


@pytest.mark.parametrize("raw, message", [
    ({}, "outer.count: missing (expected int)"),
    ({"count": 1, "cont": 2},
     "outer.cont: unknown key (did you mean 'count'?) (valid: count, inner, kind, label, momentum, named)"),
    ({"count": True}, "outer.count: expected int, got True"),
    ({"count": 0}, "outer.count: must be >= 1, got 0"),
    ({"count": 1, "momentum": 1}, "outer.momentum: must be in [0, 1), got 1"),
    ({"count": 1, "label": ""}, "outer.label: must not be empty, got ''"),
    ({"count": 1, "kind": "b"}, "outer.kind: unknown value 'b' (choose from a)"),
    ({"count": 1, "inner": {"share": 0}}, "outer.inner.share: must be in (0, 1] (a share), got 0"),
    ({"count": 1, "inner": {"steps": 0.5}}, "outer.inner.steps: expected int or null, got 0.5"),
    ({"count": 1, "inner": 3}, "outer.inner: expected a mapping, got 3"),
    ({"count": 1, "named": {"x": {"share": 2}}}, "outer.named.x.share: must be in (0, 1] (a share), got 2"),
])
def test_a_bad_value_is_named_by_its_dotted_path(raw, message):
    assert error(raw) == message


def test_choices_are_asked_when_checking():
    GROWING.append("b")
    try:
        assert build(Outer, {"count": 1, "kind": "b"}, "outer").kind == "b"
    finally:
        GROWING.remove("b")


def test_the_json_schema_says_the_same_rules():
    schema = json_schema(Outer)
    assert schema["required"] == ["count"] and schema["additionalProperties"] is False
    assert schema["properties"]["momentum"] == {"type": "number", "minimum": 0, "exclusiveMaximum": 1,
                                                "description": "must be in [0, 1)", "default": 0.0}
    assert schema["properties"]["kind"]["enum"] == ["a"]
    assert schema["properties"]["inner"]["properties"]["share"]["exclusiveMinimum"] == 0
