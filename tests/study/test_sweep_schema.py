"""The sweep files' JSON schema, made from the declarations the runner checks with, accepts every shipped study
and points at a bad key or value where the runner refuses it too."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from runner.study import sweep_schema
from runner.study.sweep_file import read_yaml

SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = sweep_schema.sweep_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", sorted(SWEEPS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_sweep_validates_against_the_schema(validator, path):
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(
        read_yaml(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize("change, where, words", [
    (lambda d: d["base"]["model"].update(gamma=1.5), "base.model.gamma", "greater than the maximum of 1"),
    (lambda d: d["base"]["algorithm"].update(mu=-1), "base.algorithm.mu", "less than the minimum of 0"),
    (lambda d: d["base"]["data"].update(dataset="imagenet"), "base.data.dataset", "is not one of"),
    (lambda d: d["base"]["logging"].update(results_dir="x"), "base.logging", "'results_dir' was unexpected"),
    (lambda d: d["grid"].update({"model.gama": [0.1]}), "grid", "'model.gama' does not match any of the regexes"),
    (lambda d: d["grid"].update(seed=[{"model.gamma": 0.1}]), "grid.seed.0", "is not of type 'integer'"),
    (lambda d: d.update(variants=[{"model.gamma": [0.1, 2]}]), "variants.0.model.gamma", "not valid under any"),
    (lambda d: d["search"].update(sample=3), "search", "'sample' was unexpected"),
    (lambda d: d["search"]["space"].update({"train.local_epochs": {"uniform": [1, 2]}}), "search.space",
     "'train.local_epochs' is not one of"),
    (lambda d: d.update(targets=[{"accuracy": 80}]), "targets.0.accuracy", "greater than or equal to the maximum"),
])
def test_the_schema_points_at_a_bad_key_or_value(validator, change, where, words):
    sweep = copy.deepcopy(read_yaml((SWEEPS / "lr_search.yaml").read_text()))
    change(sweep)
    errors = [(".".join(map(str, e.absolute_path)), e.message) for e in validator.iter_errors(sweep)]
    assert [path for path, _ in errors] == [where] and words in errors[0][1], errors


def test_the_command_prints_the_schema(capsys):
    assert sweep_schema.main() == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$defs"]["model.gamma"]["maximum"] == 1 and schema["required"] == ["name"]
