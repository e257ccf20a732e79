"""What a real API server with KubeRay (and Kueue) does to a RayJob on create, which kmock lacks.

Each rule is read from the real sources (see ../shared/schemas/README.md):
- schema validation: a RayJob whose fields have the wrong type or value is refused (422);
- field pruning: the API server silently drops every field the installed CRD's structural
  schema does not declare; the CRDs of each supported KubeRay version are in
  ../shared/schemas (this module finds the dropped fields with `jsonschema` and
  `additionalProperties: false`, independently of the operator's own check);
- KubeRay's own validation: names over 47 characters, `suspend` or `ttlSecondsAfterFinished`
  without `shutdownAfterJobFinishes`;
- KubeRay's autoscaler: an autoscaling head needs the service-account token
  (kuberay `common/pod.go`, `common/rbac.go`): with `automountServiceAccountToken: false` on
  the head the cluster never gets a worker;
- Kueue's RayJob webhook (kueue `pkg/controller/jobs/rayjob/rayjob_webhook.go`,
  `raycluster/common.go` `ValidateCreate`): for a job with a queue-name label,
  `shutdownAfterJobFinishes` must be true, `enableInTreeAutoscaling` needs workload slicing
  (annotation `kueue.x-k8s.io/elastic-job: "true"` AND the ElasticJobsViaWorkloadSlices gate),
  no worker group may be named `head`, at most 8 PodSets (head + worker groups), and a
  `clusterSelector` cannot be combined with a `rayClusterSpec`.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import kmock
import pytest
import yaml
from k8s_helpers import SHARED_SCHEMAS, to_json_schema

KUBERAY_CRDS = {
    "1.4.2": SHARED_SCHEMAS / "kuberay-v1.4.2" / "ray.io_rayjobs.yaml",
    "1.5.1": SHARED_SCHEMAS / "kuberay-v1.5.1" / "ray.io_rayjobs.yaml",
    "1.6.2": SHARED_SCHEMAS / "kuberay-v1.6.2" / "ray.io_rayjobs.yaml",
    "1.7.0": SHARED_SCHEMAS / "ray.io_rayjobs.yaml",
}
OLDEST, NEWEST = "1.4.2", "1.7.0"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
ELASTIC_JOB = "kueue.x-k8s.io/elastic-job"
MAX_POD_SETS = 8  # kueue jobframework.MaxPodSets


def require_kuberay_crds() -> None:
    """Skip the test (called from a fixture) where ../shared/schemas, which holds KubeRay's CRDs,
    is absent (a clone without the workspace's shared folder): nothing can admit a RayJob then."""
    missing = [version for version, path in KUBERAY_CRDS.items() if not path.is_file()]
    if missing:
        pytest.skip(
            f"../shared/schemas is absent (no KubeRay {', '.join(missing)} RayJob CRD at "
            f"{SHARED_SCHEMAS}): RayJobs cannot be admitted as a real API server would"
        )


@functools.cache
def rayjob_crd(version: str) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(Path(KUBERAY_CRDS[version]).read_text(), Loader=loader)


def _schema(version: str) -> dict[str, Any]:
    crd = rayjob_crd(version)
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"][
        "openAPIV3Schema"
    ]


def _closed(node: Any) -> Any:
    """Mark every object with declared properties closed, as pruning treats it."""
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _closed(v) for k, v in node.items()}
    open_ended = "additionalProperties" in node or node.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in node and not open_ended:
        out["additionalProperties"] = False
    return out


@functools.cache
def _pruning_validator(version: str) -> jsonschema.Draft4Validator:
    schema = to_json_schema(_closed(_schema(version)))
    schema["properties"]["metadata"] = {"type": "object"}  # the API server owns metadata
    return jsonschema.Draft4Validator(schema)


def pruned_fields(job: dict[str, Any], version: str) -> list[str]:
    """Fields of `job` that KubeRay `version`'s API server would drop silently."""
    lost = []
    for error in _pruning_validator(version).iter_errors(job):
        if error.validator == "additionalProperties":
            where = ".".join(map(str, error.absolute_path))
            allowed = set(error.schema.get("properties", {}))
            lost += [f"{where}.{k}".lstrip(".") for k in error.instance if k not in allowed]
    return sorted(lost)


def schema_errors(job: dict[str, Any], version: str) -> list[str]:
    """Type/enum/required errors against that version's CRD (pruning aside)."""
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _pruning_validator(version).iter_errors(job)
        if e.validator != "additionalProperties"
    ]


def autoscaler_problems(job: dict[str, Any]) -> list[str]:
    """Why KubeRay's autoscaler could not add workers to this RayJob's cluster."""
    cluster = job["spec"]["rayClusterSpec"]
    if not cluster.get("enableInTreeAutoscaling"):
        return []
    head = cluster["headGroupSpec"]["template"]["spec"]
    if head.get("automountServiceAccountToken") is False:
        return ["head pod: autoscaler sidecar has no service-account token to reach the API"]
    return []


def kuberay_problems(job: dict[str, Any]) -> list[str]:
    """What KubeRay's RayJob validation refuses (status ValidationFailed, which never recovers)
    or silently ignores (see ../shared/schemas/README.md)."""
    spec, name = job["spec"], job["metadata"]["name"]
    problems = []
    if len(name) > 47:
        problems.append(f"metadata.name: {name!r} is longer than 47 characters")
    if spec.get("suspend") and not spec.get("shutdownAfterJobFinishes"):
        problems.append("spec.suspend: only allowed with shutdownAfterJobFinishes: true")
    if "ttlSecondsAfterFinished" in spec and not spec.get("shutdownAfterJobFinishes"):
        problems.append("spec.ttlSecondsAfterFinished: ignored without shutdownAfterJobFinishes")
    return problems


def kueue_webhook(job: dict[str, Any], *, elastic_jobs_gate: bool = False) -> list[str]:
    """Kueue's ValidateCreate for a RayJob, as `field` errors; [] when admitted."""
    meta = job.get("metadata") or {}
    if not (meta.get("labels") or {}).get(QUEUE_LABEL):
        return []
    spec = job.get("spec") or {}
    cluster, selector = spec.get("rayClusterSpec"), spec.get("clusterSelector")
    if selector and cluster:
        return ["spec.clusterSelector: a kueue managed job should not use an existing cluster"]
    if selector:
        return []
    if not cluster:
        return ["spec.rayClusterSpec: Required value"]
    errors = []
    if not spec.get("shutdownAfterJobFinishes"):
        errors.append(
            "spec.shutdownAfterJobFinishes: a kueue managed job should delete the cluster"
        )
    slicing = elastic_jobs_gate and (meta.get("annotations") or {}).get(ELASTIC_JOB) == "true"
    if cluster.get("enableInTreeAutoscaling") and not slicing:
        errors.append(
            "spec.rayClusterSpec.enableInTreeAutoscaling: a kueue managed job should only use "
            "autoscaling when workload slicing is enabled"
        )
    groups = cluster.get("workerGroupSpecs") or []
    if len(groups) + 1 > MAX_POD_SETS:
        errors.append(f"spec.rayClusterSpec.workerGroupSpecs: Too many: {len(groups) + 1}")
    for index, group in enumerate(groups):
        if group.get("groupName") == "head":
            errors.append(f"spec.rayClusterSpec.workerGroupSpecs[{index}].groupName: reserved")
    return errors


def rejected(status: int, reason: str, message: str) -> kmock.KubernetesError:
    """An admission error as the API server sends it (a Status with code and message)."""
    return kmock.KubernetesError(status=status, reason=reason, message=message, details={})


class AdmittingEmulator(kmock.KubernetesEmulator):
    """kmock plus the admission a real cluster applies to RayJobs on create.

    `kuberay` is the installed KubeRay version (its CRD prunes fields and is served at
    `customresourcedefinitions/rayjobs.ray.io`), `kueue` turns Kueue's webhook on, and
    `reject` makes every RayJob create fail with that (status, reason), e.g. a 403 from RBAC.
    Every RayJob created is recorded with what was pruned and the autoscaler's problems.
    """

    kuberay: str = NEWEST
    kueue: bool = False
    elastic_jobs_gate: bool = False
    reject: tuple[int, str] | None = None

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.admitted: list[dict[str, Any]] = []

    def install_kuberay_crd(self) -> None:
        """Serve the installed RayJob CRD as the API server does (the test is skipped where
        ../shared/schemas is absent)."""
        require_kuberay_crds()
        crds = self.resources["apiextensions.k8s.io/v1/customresourcedefinitions"]
        crds.kind, crds.namespaced, crds.verbs = "CustomResourceDefinition", False, {"get", "list"}
        key = ("apiextensions.k8s.io/v1/customresourcedefinitions", None, "rayjobs.ray.io")
        self.objects[key] = copy.deepcopy(rayjob_crd(self.kuberay))

    async def _handle(self, request: Any) -> Any:
        if self._is_rayjob_create(request):
            self._admit(request.data)
        return await super()._handle(request)

    @staticmethod
    def _is_rayjob_create(request: Any) -> bool:
        resource = request.resource
        return (
            resource is not None
            and resource.plural == "rayjobs"
            and str(request.action).endswith("CREATE")
            and isinstance(request.data, dict)
        )

    def _admit(self, job: dict[str, Any]) -> None:
        if self.reject is not None:
            status, reason = self.reject
            raise rejected(status, reason, f"rayjobs.ray.io is {reason.lower()} (test)")
        invalid = schema_errors(job, self.kuberay)  # the CRD's own validation: 422
        if invalid:
            raise rejected(422, "Invalid", f"RayJob is invalid: {'; '.join(invalid[:3])}")
        if self.kueue:
            problems = kueue_webhook(job, elastic_jobs_gate=self.elastic_jobs_gate)
            if problems:
                message = 'admission webhook "vrayjob.kb.io" denied the request: ' + "; ".join(
                    problems
                )
                raise rejected(422, "Invalid", message)
        lost = pruned_fields(job, self.kuberay)
        self.admitted.append(
            {
                "job": copy.deepcopy(job),
                "pruned": lost,
                "autoscaler": autoscaler_problems(job),
                "kuberay": kuberay_problems(job),
            }
        )
        _drop(job, lost)  # what the API server stores: the pruned object


def _drop(job: dict[str, Any], paths: list[str]) -> None:
    for path in paths:
        node: Any = job
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node.pop(last, None)
