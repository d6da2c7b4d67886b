"""A JSON schema of sweep files, for editors that check the YAML as it is typed.

Generated from the declarations the runner checks with (runner/settings.py): every config field's type, bounds,
choices and default; the dotted keys a grid, a variant or a target sets; the ``search:`` section. The runner's
own check stays the authority (it knows the rules across fields, which algorithm reads a setting, and whether
two trials come out the same); the schema catches a misspelled key or an out-of-range value before a run.

    python -m runner.study.sweep_schema > sweep.schema.json

then, for VS Code's YAML extension, a first line ``# yaml-language-server: $schema=sweep.schema.json`` in a
sweep file (or a ``yaml.schemas`` entry for ``sweeps/*.yaml``).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from runner.config import TrialConfig, config_columns
from runner.settings import hint_options, json_schema
from runner.study.search import Search
from runner.study.sweep_file import _NAME_PATTERN, RUNNER_OWNED, TOP_LEVEL_KEYS
from runner.study.targets import ACCURACY_KEY

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def sweep_schema() -> dict[str, Any]:
    """The schema of a sweep file (``runner/study/sweep_file.py`` describes the keys)."""
    base = json_schema(TrialConfig)
    _drop_runner_owned(base)
    leaves = {key: schema for key, schema in _leaves(base["properties"]) if key not in RUNNER_OWNED}
    fields = {key: {"$ref": f"#/$defs/{key}"} for key in leaves}  # each field's schema once, in $defs
    taken = sorted({key.split(".")[0] for key in config_columns()})  # sections and top-level fields: not labels
    label = rf"^(?!({'|'.join(map(re.escape, taken))})$)[A-Za-z0-9][A-Za-z0-9_-]*$"  # a grid axis's own name
    override_set = {"type": "object", "properties": fields, "additionalProperties": False, "minProperties": 1}
    override_sets = {"type": "array", "items": {"$ref": "#/$defs/override_set"}, "minItems": 1}
    axis = {"type": "object", "additionalProperties": False}  # a key is a field (properties) or a label
    grid = {**axis, "properties": {key: _list_of(schema) for key, schema in fields.items()},
            "patternProperties": {label: override_sets},
            "description": "the cross product of its axes: a config field and its values, or a label and override "
                           "sets (settings that go together)"}
    variant = {**axis, "minProperties": 1, "patternProperties": {label: override_sets},
               "properties": {key: {"anyOf": [schema, _list_of(schema)]} for key, schema in fields.items()}}
    search = json_schema(Search)
    floats = [key for key, hint in config_columns().items() if key in fields
              and float in hint_options(hint) and int not in hint_options(hint)]
    search["properties"]["space"]["propertyNames"] = {"enum": floats}
    target = {"type": "object", "required": [ACCURACY_KEY], "additionalProperties": False,
              "properties": {ACCURACY_KEY: {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                                            "description": "a test accuracy to reach, as a fraction (0.8 for 80 %)"},
                             **fields}}
    properties = {
        "name": {"type": "string", "pattern": _NAME_PATTERN.pattern,
                 "description": "results sub-directory and W&B group"},
        "description": {"type": "string"},
        "base": _or_null(base),
        "grid": _or_null(grid),
        "variants": _or_null({"type": "array", "items": variant}),
        "search": _or_null(search),
        "targets": {"type": "array", "items": target, "minItems": 1},
    }
    assert list(properties) == list(TOP_LEVEL_KEYS), "a top-level key of sweep files is missing from the schema"
    return {"$schema": SCHEMA_DIALECT, "title": "fedpara-runner sweep file", "type": "object",
            "required": ["name"], "properties": properties, "additionalProperties": False,
            "$defs": {**leaves, "override_set": override_set}}


def _leaves(properties: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, schema) of every value a nested section schema holds."""
    leaves: list[tuple[str, Any]] = []
    for key, schema in properties.items():
        if schema.get("type") == "object" and "properties" in schema:
            leaves.extend(_leaves(schema["properties"], f"{prefix}{key}."))
        else:
            leaves.append((f"{prefix}{key}", schema))
    return leaves


def _drop_runner_owned(base: dict[str, Any]) -> None:
    for key in RUNNER_OWNED:
        *sections, leaf = key.split(".")
        node = base
        for section in sections:
            node = node["properties"][section]
        del node["properties"][leaf]


def _list_of(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema, "minItems": 1, "uniqueItems": True}


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An empty key (``grid:``) reads as none; the type stays on the schema, so an error points inside it."""
    return {**schema, "type": [schema["type"], "null"]}


def main() -> int:
    json.dump(sweep_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
