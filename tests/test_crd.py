"""The Experiment CRD and the spec reference are generated from the models and committed."""

from __future__ import annotations

import copy
import re
import typing
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from k8s_helpers import crd_validator, errors
from pydantic import BaseModel

from lima.k8s.crd import MAX_NAME_LENGTH, PRINTER_COLUMNS, render_crd, render_crd_yaml
from lima.spec.reference import render_reference
from lima.spec.status import ExperimentStatus

REPO = Path(__file__).resolve().parents[1]
CRD_FILE = REPO / "helm/lima-run/crds/experiments.lima-run.io.yaml"
REFERENCE = REPO / "docs/experiment-reference.md"
_COMBINATORS = ("anyOf", "oneOf", "allOf", "not")


def test_committed_crd_matches_the_models() -> None:
    assert CRD_FILE.read_text() == render_crd_yaml(), "CRD drifted from lima/spec: run `make crd`"


def test_committed_reference_matches_the_models() -> None:
    assert REFERENCE.read_text() == render_reference(), "reference drifted: run `make crd`"


def _walk(node: dict[str, Any], path: str):
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")


def test_schema_is_structural() -> None:
    schema = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema, ""):
        schemaless = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
            "x-kubernetes-int-or-string"
        )
        assert "type" in node or schemaless, f"{path}: untyped node"
        assert "$ref" not in node and "title" not in node, path
        assert not any(k in node for k in _COMBINATORS), f"{path}: combinator"
        assert node.get("additionalProperties", True) is not False, f"{path}: additionalProperties"
        if node.get("type") == "object" and not schemaless:
            assert "properties" in node or path == ".metadata", f"{path}: object without fields"
    # Kubernetes only allows `type: object` (and name/generateName rules) on root metadata.
    assert schema["properties"]["metadata"] == {"type": "object"}


def test_crd_is_a_valid_v1_crd() -> None:
    crd = render_crd()
    kubernetes_validate.validate(crd, "1.33", strict=True)
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["names"]["shortNames"] == ["exp"]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase" and columns["Age"] == ".metadata.creationTimestamp"
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    condition = status["conditions"]["items"]["properties"]
    assert set(condition) >= {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }
    stage = status["stages"]["items"]["properties"]
    assert set(stage) >= {
        "name",
        "phase",
        "rayJob",
        "attempts",
        "startTime",
        "endTime",
        "artifactUri",
        "message",
    }


def _status_model_at(path: str) -> type[BaseModel] | type:
    """Follow a printer column's `.status.a.b[?(@.c=="x")].d` through ExperimentStatus by the
    fields' camelCase aliases; fail on a segment (or a filter's field) no model declares."""
    node: Any = ExperimentStatus
    segments = re.findall(r"(\.(\w+)(\[[^\]]*\])?)", path.removeprefix(".status"))
    assert "".join(whole for whole, _, _ in segments) == path.removeprefix(".status"), path
    for _, name, rest in segments:
        assert isinstance(node, type) and issubclass(node, BaseModel), f"{path}: {name} of a leaf"
        fields = {f.alias or n: f for n, f in node.model_fields.items()}
        assert name in fields, f"{path}: {name!r} is no field of {node.__name__}"
        node = fields[name].annotation
        if typing.get_origin(node) is list:
            (node,) = typing.get_args(node)
        for filtered in re.findall(r"@\.(\w+)", rest):
            item = {f.alias or n for n, f in node.model_fields.items()}
            assert filtered in item, f"{path}: filter on {filtered!r}, no field of {node.__name__}"
    return node


def test_printer_columns_read_fields_of_the_status_model() -> None:
    columns = render_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    assert columns == PRINTER_COLUMNS
    status_paths = [c["jsonPath"] for c in columns if c["jsonPath"].startswith(".status.")]
    assert len(status_paths) == len(columns) - 1  # all but Age
    for path in status_paths:
        _status_model_at(path)
    by_name = {c["name"]: c["jsonPath"] for c in columns}
    assert by_name["Best-Epoch"] == ".status.bestEpoch"
    assert by_name["Win-Rate"] == ".status.winRate"
    assert by_name["Variants"] == ".status.variantProgress"
    # ... which are the fields the operator fills from the select and judge results and sweeps.
    aliases = {f.alias: n for n, f in ExperimentStatus.model_fields.items()}
    assert aliases["bestEpoch"] == "best_epoch" and aliases["winRate"] == "win_rate"
    assert aliases["variantProgress"] == "variant_progress"


def test_a_printer_column_on_a_missing_status_field_is_caught() -> None:
    for path in (".status.bestEpochs", '.status.conditions[?(@.kind=="Ready")].reason'):
        with pytest.raises(AssertionError):
            _status_model_at(path)
    assert _status_model_at('.status.conditions[?(@.type=="Ready")].message') is str


def test_name_rules_are_cel() -> None:
    rules = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "x-kubernetes-validations"
    ]
    assert any(f"size() <= {MAX_NAME_LENGTH}" in r["rule"] for r in rules)
    assert any("matches(" in r["rule"] for r in rules)


def test_example_validates_against_generated_schema() -> None:
    validator = crd_validator(render_crd(), "v1alpha1")
    example = yaml.safe_load((REPO / "examples/experiment.yaml").read_text())
    assert errors(validator, example) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "train", "lr"), 0),
        (("spec", "train", "zero_stage"), 1),
        (("spec", "judge", "backend"), "gpt"),
        (("spec", "data", "sources"), []),
        (("spec", "resources", "train", "memory"), "lots"),
        (("spec", "generate", "top_p"), 1.5),
    ],
)
def test_generated_schema_rejects_bad_values(path: tuple[str, ...], value: Any) -> None:
    validator = crd_validator(render_crd(), "v1alpha1")
    example = copy.deepcopy(yaml.safe_load((REPO / "examples/experiment.yaml").read_text()))
    node = example
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    assert errors(validator, example), f"{'.'.join(path)}={value!r} was accepted"
