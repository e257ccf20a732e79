"""Which KubeRay lima-run supports, and what the installed one would silently drop.

An API server prunes every field that the installed CRD's structural schema does not declare,
without an error: a RayJob field that only a newer KubeRay knows simply vanishes on an older
one. The operator therefore reads the installed RayJob CRD and checks each RayJob it builds
against it (`unknown_fields`) before creating it, and only sets version-dependent fields
(`preRunningDeadlineSeconds`, KubeRay >= 1.6) when the installed schema declares them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The supported range: the oldest version every RayJob of ours is tested against (its CRD is
# in ../shared/schemas/kuberay-v1.4.2) and the newest tested. Chart.yaml repeats it in the
# annotation `lima-run.io/kuberay-versions` (tests/test_chart.py keeps the two equal).
KUBERAY_MIN = "1.4.2"
KUBERAY_MAX_TESTED = "1.7.0"
SUPPORTED_RANGE = f">={KUBERAY_MIN} <={KUBERAY_MAX_TESTED}"
RAYJOB_CRD = "rayjobs.ray.io"
PRE_RUNNING_DEADLINE = "preRunningDeadlineSeconds"


def rayjob_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The `ray.io/v1` openAPIV3Schema of a RayJob CRD object."""
    for version in crd.get("spec", {}).get("versions", []):
        if version.get("name") == "v1":
            return version["schema"]["openAPIV3Schema"]
    raise LookupError(f"{RAYJOB_CRD} serves no v1 version")


def fits(obj: Any, schema: dict[str, Any]) -> bool:
    """Whether an API server with this structural schema would keep all of `obj`.

    `unknown_fields` without building a path per field: the operator checks every RayJob
    before creating it, and nearly all fit.
    """
    if not isinstance(obj, dict | list) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return True
    if isinstance(obj, list):
        items = schema.get("items") or {}
        return all(fits(value, items) for value in obj)
    declared = schema.get("properties")
    extra = schema.get("additionalProperties")
    for key, value in obj.items():
        if declared is not None and key in declared:
            if not fits(value, declared[key]):
                return False
        elif isinstance(extra, dict):
            if not fits(value, extra):
                return False
        elif declared is not None or extra is False:
            return False
    return True


def unknown_fields(obj: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths in `obj` that an API server with this structural schema would prune."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or not isinstance(obj, dict | list):
        return []
    if isinstance(obj, list):
        items = schema.get("items") or {}
        return [p for i, v in enumerate(obj) for p in unknown_fields(v, items, f"{path}[{i}]")]
    declared = schema.get("properties")
    extra = schema.get("additionalProperties")
    found: list[str] = []
    for key, value in obj.items():
        where = f"{path}.{key}" if path else key
        if declared is not None and key in declared:
            found += unknown_fields(value, declared[key], where)
        elif isinstance(extra, dict):
            found += unknown_fields(value, extra, where)
        elif declared is not None or extra is False:
            found.append(where)
    return found


@dataclass
class InstalledKubeRay:
    """What the operator learnt from the cluster's RayJob CRD."""

    present: bool | None = None
    """True/False once read; None when it could not be read (no RBAC): nothing is assumed."""
    schema: dict[str, Any] = field(default_factory=dict)

    @property
    def pre_running_deadline(self) -> bool:
        spec = self.schema.get("properties", {}).get("spec", {}).get("properties", {})
        return PRE_RUNNING_DEADLINE in spec

    def problem(self, rayjob: dict[str, Any]) -> str | None:
        """Why this RayJob must not be created on the installed KubeRay (None: fine)."""
        if self.present is False:
            return (
                f"KubeRay is not installed: the CRD {RAYJOB_CRD} is missing "
                f"(lima-run supports KubeRay {SUPPORTED_RANGE})"
            )
        if not self.schema:
            return None
        lost = [] if fits(rayjob, self.schema) else unknown_fields(rayjob, self.schema)
        if lost:
            return (
                f"the installed KubeRay is too old: its RayJob CRD would silently drop "
                f"{', '.join(lost[:5])} (lima-run supports KubeRay {SUPPORTED_RANGE})"
            )
        return None
