"""Helpers shared by the Kubernetes tests: OpenAPI v3 (CRD flavour) -> JSON Schema, KubeRay CRD."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SHARED_SCHEMAS = Path(__file__).resolve().parents[1].parent / "shared" / "schemas"
RAYJOB_CRD = SHARED_SCHEMAS / "ray.io_rayjobs.yaml"


def to_json_schema(node: Any) -> Any:
    """Draft-4 JSON Schema from a CRD openAPIV3Schema (boolean exclusiveMinimum is draft-4 too):
    `x-kubernetes-*` keys dropped, int-or-string -> integer|string, nullable -> also null."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def crd_validator(crd: dict[str, Any], version: str) -> jsonschema.Draft4Validator:
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    return jsonschema.Draft4Validator(to_json_schema(schema["schema"]["openAPIV3Schema"]))


@functools.cache
def rayjob_validator() -> jsonschema.Draft4Validator | None:
    """KubeRay's own RayJob schema, or None when ../shared/schemas is absent."""
    if not RAYJOB_CRD.is_file():
        return None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is large
    return crd_validator(yaml.load(RAYJOB_CRD.read_text(), Loader=loader), "v1")


def errors(validator: jsonschema.Draft4Validator, obj: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)
    ]
