"""The Experiment CustomResourceDefinition, generated from the spec models.

The openAPIV3Schema of `spec` comes from `Experiment.model_json_schema()`, rewritten into a
*structural* schema as Kubernetes requires (every node typed, no `$ref`, no `anyOf` with types,
no `additionalProperties: false`, `metadata` left to the API server). The status schema comes the
same way from `ExperimentStatus` (lima/spec/status.py); printer columns and CEL rules are declared
here because they describe the cluster object, not the spec.
"""

from __future__ import annotations

from typing import Any

import yaml

from lima.spec import API_GROUP, API_VERSION, KIND, Experiment
from lima.spec.data import DNS_LABEL
from lima.spec.status import ExperimentStatus

PLURAL = "experiments"
SINGULAR = "experiment"
SHORT_NAMES = ["exp"]
CRD_NAME = f"{PLURAL}.{API_GROUP}"
# `<name>-<stage>-<7 hex>` stays within KubeRay's 47 characters: 47 - len("-generate-") - 7.
MAX_NAME_LENGTH = 30

# JSON-schema keywords that carry over to OpenAPI v3 as they are.
_KEPT = (
    "description",
    "default",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "format",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
)

_CEL_NAME_RULES = [
    {
        "rule": f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
        "message": f"metadata.name must be at most {MAX_NAME_LENGTH} characters so that derived "
        "RayJob names stay within 47 characters",
    },
    {
        "rule": f"self.metadata.name.matches('{DNS_LABEL}')",
        "message": "metadata.name must be a DNS-1035 label (lower case letters, digits and '-', "
        "starting with a letter)",
    },
]

_CEL_TRAIN_RULES = [
    {"rule": "self.final_lr <= self.lr", "message": "final_lr must be <= lr"},
]


def _inline(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    target = dict(defs[ref.rsplit("/", 1)[-1]])
    target.update({k: v for k, v in schema.items() if k != "$ref"})
    return target


def _nullable_branch(schema: dict[str, Any]) -> dict[str, Any] | None:
    """`X | None` arrives as anyOf [X, null]; return X (or None when it is something else)."""
    branches = schema.get("anyOf")
    if not branches or len(branches) != 2:
        return None
    rest = [b for b in branches if b.get("type") != "null"]
    return rest[0] if len(rest) == 1 else None


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Turn one pydantic JSON-schema node into a structural OpenAPI v3 node."""
    schema = _inline(schema, defs)
    out: dict[str, Any] = {}
    inner = _nullable_branch(schema)
    if inner is not None:
        out = structural(inner, defs)
        out["nullable"] = True
        for key in _KEPT:  # constraints declared on the optional field itself
            if key in schema:
                out[key] = schema[key]
        return _ordered(out)
    if "const" in schema:
        schema = {**schema, "enum": [schema["const"]]}
    if "anyOf" in schema:  # e.g. Literal of several types: accept any scalar listed
        values = [b["const"] for b in schema["anyOf"] if "const" in b]
        if len(values) != len(schema["anyOf"]):
            raise ValueError(f"cannot express {schema} as a structural schema")
        schema = {**schema, "enum": values}
    out["type"] = _type_of(schema)
    for key in _KEPT:
        if key in schema:
            out[key] = schema[key]
    if "exclusiveMinimum" in schema:
        out["minimum"], out["exclusiveMinimum"] = schema["exclusiveMinimum"], True
    if "exclusiveMaximum" in schema:
        out["maximum"], out["exclusiveMaximum"] = schema["exclusiveMaximum"], True
    if out["type"] == "object":
        props = schema.get("properties", {})
        out["properties"] = {name: structural(p, defs) for name, p in props.items()}
        if schema.get("required"):
            out["required"] = list(schema["required"])
    if out["type"] == "array":
        out["items"] = structural(schema["items"], defs)
    return _ordered(out)


def _type_of(schema: dict[str, Any]) -> str:
    if "type" in schema:
        return schema["type"]
    values = schema.get("enum", [])
    kinds = {type(v) for v in values}
    if kinds == {str}:
        return "string"
    if kinds == {int}:
        return "integer"
    if kinds <= {int, float} and kinds:
        return "number"
    if kinds == {bool}:
        return "boolean"
    raise ValueError(f"schema node without a single type: {schema}")


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """Stable key order so the committed YAML diff stays readable."""
    first = ("type", "description", "nullable", "default", "enum")
    keys = [k for k in first if k in node] + sorted(k for k in node if k not in first)
    return {k: node[k] for k in keys}


def spec_schema() -> dict[str, Any]:
    """Structural schema of `.spec`, straight from `ExperimentSpec`."""
    full = Experiment.model_json_schema()
    defs = full.get("$defs", {})
    spec = structural(full["properties"]["spec"], defs)
    spec["properties"]["train"]["x-kubernetes-validations"] = _CEL_TRAIN_RULES
    return spec


def status_schema() -> dict[str, Any]:
    """Structural schema of `.status`, straight from `ExperimentStatus`."""
    full = ExperimentStatus.model_json_schema(by_alias=True)
    schema = structural(full, full.get("$defs", {}))
    # kopf keeps its own bookkeeping (handler progress) here; schemaless on purpose.
    schema["properties"]["kopf"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema.pop("required", None)
    return _without_null_defaults(schema)


def _without_null_defaults(node: Any) -> Any:
    """The operator writes what it knows; the API server must not invent nulls for the rest."""
    if isinstance(node, dict):
        return {
            k: _without_null_defaults(v)
            for k, v in node.items()
            if not (k == "default" and v is None)
        }
    if isinstance(node, list):
        return [_without_null_defaults(v) for v in node]
    return node


PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Stage", "type": "string", "jsonPath": ".status.currentStage"},
    {"name": "Done", "type": "integer", "jsonPath": ".status.stagesDone"},
    {"name": "Total", "type": "integer", "jsonPath": ".status.stagesTotal"},
    {"name": "Best-Epoch", "type": "integer", "jsonPath": ".status.bestEpoch"},
    {"name": "Win-Rate", "type": "string", "jsonPath": ".status.winRate"},
    {"name": "Variants", "type": "string", "jsonPath": ".status.variantProgress"},
    # Why the phase is what it is: every condition carries the latest reason and message.
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
    {
        "name": "Message",
        "type": "string",
        "priority": 1,  # `kubectl get exp -o wide`
        "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def open_api_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": Experiment.__doc__.strip().splitlines()[0],
        "required": ["spec"],
        "x-kubernetes-validations": _CEL_NAME_RULES,
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": status_schema(),
        },
    }


def render_crd() -> dict[str, Any]:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of Experiment."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/part-of": "lima-run"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["lima-run"],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": open_api_schema()},
                }
            ],
        },
    }


HEADER = (
    "# GENERATED by `lima crd` from the pydantic models in lima/spec; do not edit by hand.\n"
    "# Regenerate with `make crd`; tests/test_crd.py fails when this file drifts from the models.\n"
)


def render_crd_yaml() -> str:
    body = yaml.safe_dump(render_crd(), sort_keys=False, width=100, allow_unicode=True)
    return HEADER + "---\n" + body
