"""The one RayJob builder: an Experiment stage -> a KubeRay `ray.io/v1` RayJob manifest.

Pure function, no API calls: the operator creates what it returns, the tests validate it
against KubeRay's own CRD. Credentials appear only as `secretKeyRef`s, never as values.

The stage's Experiment spec travels with the RayJob: the JSON document is an annotation of the
head pod's template, which the kubelet writes to `SPEC_PATH` (a downward-API volume) for
`lima stage` to read. Nothing has to be written anywhere before the RayJob is created, and the
job runs exactly the spec its own manifest shows (its digest is the RayJob's
`lima-run.io/spec-digest` annotation). A spec larger than `MAX_INLINE_SPEC` is read from a
snapshot in the artifact store instead (`spec_uri`). The spec holds no credentials.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from lima.k8s.pools import Pool, stage_resources
from lima.spec import Experiment, StageResources

MAX_RAYJOB_NAME = 47  # KubeRay derives longer names (cluster, submitter) from it
HASH_CHARS = 7
RAY_VERSION = "2.60.0"
LABEL_EXPERIMENT = "lima-run.io/experiment"
LABEL_STAGE = "lima-run.io/stage"
LABEL_KEY = "lima-run.io/key"
KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
RUN_AS_USER = 1000  # the runtime image's non-root user
SPEC_ANNOTATION = "lima-run.io/experiment"
"""Head-pod annotation holding the Experiment document (JSON) the stage runs."""
SPEC_DIGEST_ANNOTATION = "lima-run.io/spec-digest"
"""RayJob annotation: the digest of that spec (the Experiment's `status.specDigest`)."""
SPEC_DIR = "/etc/lima-run"
SPEC_PATH = f"{SPEC_DIR}/experiment.json"
"""Where the head container reads the annotation (downward-API volume, read-only)."""
MAX_INLINE_SPEC = 64 * 1024
"""Largest spec (bytes of JSON) carried in the RayJob: a pod's annotations may total 256 KiB,
and KubeRay adds its own. A larger spec is read from the artifact store (`spec_uri`)."""


@dataclass(frozen=True)
class S3Ref:
    """Where artifacts live and which Secret holds the credentials (names only, no values)."""

    secret: str
    endpoint: str | None = None
    bucket: str | None = None
    access_key_key: str = "accessKey"
    secret_key_key: str = "secretKey"
    secure: bool = False
    region: str | None = None


@dataclass(frozen=True)
class RayJobOptions:
    """Cluster-wide knobs from the chart's values."""

    ray_version: str = RAY_VERSION
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()
    """Names of Secrets every Ray pod pulls its image with (chart value `imagePullSecrets`)."""
    head_cpu: str = "1"
    head_memory: str = "2Gi"
    head_placement: dict[str, Any] = field(default_factory=dict)
    """Pod fields of every head pod: nodeSelector, tolerations, affinity, priorityClassName."""
    ttl_seconds_after_finished: int = 600
    default_timeout_s: int = 86400
    """`activeDeadlineSeconds` of a stage whose `resources.<stage>.timeout_s` is empty: a job
    that cannot be scheduled or whose image cannot be pulled fails instead of hanging forever."""
    pre_running_deadline_seconds: int | None = None
    """KubeRay >= 1.6 only (older API servers prune it silently): the operator sets it when
    the installed RayJob CRD declares the field, and leaves it out otherwise."""
    service_account: str | None = None
    autoscaler_cpu: str = "500m"
    autoscaler_memory: str = "512Mi"
    """The autoscaler sidecar's size (KubeRay's own default; Kueue counts the same)."""
    extra_env: tuple[tuple[str, str], ...] = ()
    """(name, value) pairs for every Ray container, e.g. LIMA_JUDGE_BASE_URL."""
    secret_env: tuple[tuple[str, str, str], ...] = ()
    """(env name, Secret name, key): more secrets as secretKeyRef, e.g. LIMA_JUDGE_API_KEY."""
    default_queue: str | None = None
    """Kueue LocalQueue for stages that name none (chart value kueue.defaultQueue)."""


def resources_digest(res: StageResources) -> str:
    """What the stage's cluster looks like: a new shape must get a new RayJob (name)."""
    return hashlib.sha256(res.model_dump_json().encode()).hexdigest()[:16]


def rayjob_name(
    experiment: str, stage: str, key: str, attempt: int | str = 0, shape: str = ""
) -> str:
    """`<experiment>-<stage>-<hash>`, at most 47 characters, deterministic for (key, attempt,
    shape): a retry, a new input or config (key) and a resources edit (shape) each get a new
    RayJob, so an edited GPU count or pool reaches the next RayJob of a non-finished stage."""
    digest = hashlib.sha256(f"{key}:{attempt}:{shape}".encode()).hexdigest()[:HASH_CHARS]
    stem = f"{experiment}-{stage}"[: MAX_RAYJOB_NAME - HASH_CHARS - 1].rstrip("-")
    return f"{stem}-{digest}"


def stage_rayjob_name(experiment: Experiment, stage: str, key: str, attempt: int | str) -> str:
    """The RayJob name of `stage` for this spec (its key, retry counter and resources)."""
    shape = resources_digest(stage_resources(experiment, stage))
    return rayjob_name(experiment.metadata.name, stage, key, attempt, shape)


def labels(experiment: str, stage: str, key: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "lima-run",
        "app.kubernetes.io/instance": experiment,
        "app.kubernetes.io/component": f"stage-{stage}"[:63],
        "app.kubernetes.io/part-of": "lima-run",
        "app.kubernetes.io/managed-by": "lima-run-operator",
        LABEL_EXPERIMENT: experiment,
        LABEL_STAGE: stage,
        LABEL_KEY: key[:63],
    }


def _env(s3: S3Ref, options: RayJobOptions) -> list[dict[str, Any]]:
    def secret(name: str, secret_name: str, key: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}

    env = [
        {"name": "LIMA_RAY_ADDRESS", "value": "auto"},  # join the RayJob's cluster
        {"name": "LIMA_WORK_DIR", "value": "/tmp/lima"},
        {"name": "HOME", "value": "/tmp/home"},  # read-only root filesystem
        {"name": "HF_HOME", "value": "/tmp/hf"},
        {"name": "LIMA_S3_SECURE", "value": "true" if s3.secure else "false"},
    ]
    if s3.endpoint:
        env.append({"name": "LIMA_S3_ENDPOINT", "value": s3.endpoint})
    if s3.bucket:
        env.append({"name": "LIMA_BUCKET", "value": s3.bucket})
    if s3.region:
        env.append({"name": "LIMA_S3_REGION", "value": s3.region})
    env.append(secret("LIMA_S3_ACCESS_KEY", s3.secret, s3.access_key_key))
    env.append(secret("LIMA_S3_SECRET_KEY", s3.secret, s3.secret_key_key))
    env += [{"name": n, "value": v} for n, v in options.extra_env]
    env += [secret(n, s, k) for n, s, k in options.secret_env]
    return env


_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}
_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_USER,
    "runAsGroup": RUN_AS_USER,
    "fsGroup": RUN_AS_USER,
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Ray writes its session under /tmp and its object store into /dev/shm.
_VOLUMES = [
    {"name": "tmp", "emptyDir": {}},
    {"name": "shm", "emptyDir": {"medium": "Memory"}},
]
_MOUNTS = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "shm", "mountPath": "/dev/shm"}]
# The spec the stage runs: the head pod's own annotation, as a file (read-only).
_SPEC_VOLUME = {
    "name": "lima-experiment",
    "downwardAPI": {
        "items": [
            {
                "path": SPEC_PATH.rsplit("/", 1)[1],
                "fieldRef": {"fieldPath": f"metadata.annotations['{SPEC_ANNOTATION}']"},
            }
        ]
    },
}
_SPEC_MOUNT = {"name": "lima-experiment", "mountPath": SPEC_DIR, "readOnly": True}


def _pod(
    container: dict[str, Any],
    pod_labels: dict[str, str],
    extra: dict[str, Any],
    options: RayJobOptions,
    *,
    api_token: bool = False,
) -> dict[str, Any]:
    """A restricted pod. `api_token`: only the head of an autoscaling cluster talks to the
    Kubernetes API (the autoscaler sidecar, with the token of the service account KubeRay
    binds its autoscaler Role to); every other Ray pod gets no token at all."""
    spec: dict[str, Any] = {
        "securityContext": _POD_SECURITY,
        "containers": [container],
        "volumes": _VOLUMES,
        **extra,
    }
    if options.image_pull_secrets and "imagePullSecrets" not in spec:
        spec["imagePullSecrets"] = [{"name": n} for n in options.image_pull_secrets]
    if options.service_account:
        spec["serviceAccountName"] = options.service_account
    if not api_token:
        spec["automountServiceAccountToken"] = False
    return {"metadata": {"labels": pod_labels}, "spec": spec}


def _container(
    name: str,
    image: str,
    env: list[dict[str, Any]],
    resources: dict[str, Any],
    options: RayJobOptions,
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": options.image_pull_policy,
        "env": env,
        "resources": resources,
        "securityContext": _CONTAINER_SECURITY,
        "volumeMounts": _MOUNTS,
    }


def _worker_resources(res: StageResources) -> dict[str, Any]:
    cpus = f"{res.cpus:g}"
    requests: dict[str, Any] = {"cpu": cpus, "memory": res.memory}
    limits: dict[str, Any] = {"cpu": cpus, "memory": res.memory}
    if res.gpus:
        limits["nvidia.com/gpu"] = str(res.gpus)
        requests["nvidia.com/gpu"] = str(res.gpus)
    return {"requests": requests, "limits": limits}


def _replicas(res: StageResources, pool: Pool, elastic: bool) -> tuple[int, int, int]:
    """(replicas, min, max): fixed clusters start every worker; elastic ones let Ray scale up."""
    if elastic:
        low = min(pool.minWorkers, res.workers)
        return low, low, res.workers
    return res.workers, res.workers, res.workers


def _worker_pod(pool: Pool, options: RayJobOptions) -> dict[str, Any]:
    """The pool's placement and overrides of its worker pods."""
    extra: dict[str, Any] = {
        "nodeSelector": dict(pool.nodeSelector),
        "tolerations": [t.manifest() for t in pool.tolerations],
    }
    if pool.affinity:
        extra["affinity"] = pool.affinity
    if pool.priorityClassName:
        extra["priorityClassName"] = pool.priorityClassName
    if pool.volumes:
        extra["volumes"] = [*_VOLUMES, *pool.volumes]
    secrets = [*({"name": n} for n in options.image_pull_secrets), *pool.imagePullSecrets]
    if secrets:
        extra["imagePullSecrets"] = secrets
    return extra


_HEAD_FIELDS = ("nodeSelector", "tolerations", "affinity", "priorityClassName")


def build_rayjob(
    experiment: Experiment,
    stage: str,
    *,
    key: str,
    namespace: str,
    image: str,
    pool: Pool,
    s3: S3Ref,
    spec_uri: str | None = None,
    spec_document: str | None = None,
    spec_digest: str | None = None,
    attempt: int | str = 0,
    owner: dict[str, Any] | None = None,
    options: RayJobOptions | None = None,
) -> dict[str, Any]:
    """The RayJob that runs `stage` of `experiment`.

    Its spec: `spec_document` (the JSON the stage reads, carried in the RayJob; see the module
    docstring), or else the snapshot at `spec_uri`. `spec_digest` is recorded as an annotation.
    """
    if (spec_uri is None) == (spec_document is None):
        raise ValueError("give the spec either inline (spec_document) or as spec_uri")
    if spec_document is not None and len(spec_document.encode()) > MAX_INLINE_SPEC:
        raise ValueError(f"spec_document is over {MAX_INLINE_SPEC} bytes: use spec_uri")
    options = options or RayJobOptions()
    res = stage_resources(experiment, stage)
    exp_name = experiment.metadata.name
    name = stage_rayjob_name(experiment, stage, key, attempt)
    meta_labels = labels(exp_name, stage, key)
    queue = res.queue or options.default_queue
    # Kueue reserves a job's whole quota before it starts, and its webhook rejects an
    # autoscaling RayJob unless elastic jobs (workload slicing) are enabled for it: a queued
    # stage runs with a fixed worker count, `resources.<stage>.workers`.
    elastic = pool.elastic and not queue
    spec: dict[str, Any] = {
        "entrypoint": f"lima stage {stage} --experiment {spec_uri or SPEC_PATH}",
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": options.ttl_seconds_after_finished,
        "backoffLimit": res.retries,
        "activeDeadlineSeconds": res.timeout_s or options.default_timeout_s,
        "submitterPodTemplate": _submitter(image, options),
        "rayClusterSpec": _cluster(
            stage, res, pool, image, s3, options, meta_labels, elastic, spec_document
        ),
    }
    if options.pre_running_deadline_seconds:
        spec["preRunningDeadlineSeconds"] = options.pre_running_deadline_seconds
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": meta_labels}
    if spec_digest:
        metadata["annotations"] = {SPEC_DIGEST_ANNOTATION: spec_digest}
    if queue:
        # Kueue admits the job by un-suspending it; KubeRay only allows suspend with shutdown.
        metadata["labels"] = {**meta_labels, KUEUE_QUEUE: queue}
        spec["suspend"] = True
    if owner is not None:
        metadata["ownerReferences"] = [owner_reference(owner)]
    return {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": metadata, "spec": spec}


def _cluster(
    stage: str,
    res: StageResources,
    pool: Pool,
    image: str,
    s3: S3Ref,
    options: RayJobOptions,
    meta_labels: dict[str, str],
    elastic: bool,
    spec_document: str | None = None,
) -> dict[str, Any]:
    env = _env(s3, options)
    head = _container(
        "ray-head",
        image,
        env,
        {
            "requests": {"cpu": options.head_cpu, "memory": options.head_memory},
            "limits": {"memory": options.head_memory},
        },
        options,
    )
    head["ports"] = [
        {"containerPort": 6379, "name": "gcs"},
        {"containerPort": 8265, "name": "dashboard"},
        {"containerPort": 10001, "name": "client"},
    ]
    worker = _container("ray-worker", pool.image or image, env, _worker_resources(res), options)
    if pool.volumeMounts:
        worker["volumeMounts"] = [*_MOUNTS, *pool.volumeMounts]
    pool_labels = {**pool.podLabels, **meta_labels, "lima-run.io/pool": pool.name}
    if pool.gpuType:
        pool_labels["lima-run.io/gpu-type"] = pool.gpuType
    head_pod = {k: v for k, v in options.head_placement.items() if k in _HEAD_FIELDS and v}
    if spec_document is not None:  # the driver (on the head) reads it from SPEC_PATH
        head["volumeMounts"] = [*_MOUNTS, _SPEC_MOUNT]
        head_pod["volumes"] = [*_VOLUMES, _SPEC_VOLUME]
    head_template = _pod(head, meta_labels, head_pod, options, api_token=elastic)
    if spec_document is not None:
        head_template["metadata"]["annotations"] = {SPEC_ANNOTATION: spec_document}
    worker_template = _pod(worker, pool_labels, _worker_pod(pool, options), options)
    if pool.podAnnotations:
        worker_template["metadata"]["annotations"] = dict(pool.podAnnotations)
    replicas, low, high = _replicas(res, pool, elastic)
    worker_params = {"num-cpus": f"{max(int(res.cpus), 1)}"}
    if res.gpus:
        worker_params["num-gpus"] = str(res.gpus)
    cluster: dict[str, Any] = {
        "rayVersion": options.ray_version,
        "enableInTreeAutoscaling": elastic,
        # The driver runs on the head; tasks go to the pool's workers only.
        "headGroupSpec": {
            "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
            "template": head_template,
        },
        "workerGroupSpecs": [
            {
                "groupName": f"{stage}-workers"[:63],
                "replicas": replicas,
                "minReplicas": low,
                "maxReplicas": high,
                "rayStartParams": worker_params,
                "template": worker_template,
            }
        ],
    }
    if elastic:
        size = {"cpu": options.autoscaler_cpu, "memory": options.autoscaler_memory}
        cluster["autoscalerOptions"] = {
            "upscalingMode": "Default",
            "idleTimeoutSeconds": 60,
            "securityContext": _CONTAINER_SECURITY,
            "resources": {"requests": size, "limits": size},
        }
    return cluster


def _submitter(image: str, options: RayJobOptions) -> dict[str, Any]:
    """The K8sJobMode submitter pod (`ray job submit`), under the same restricted profile."""
    container = _container(
        "ray-job-submitter",
        image,
        [],
        {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        options,
    )
    pod = _pod(
        container, {"app.kubernetes.io/part-of": "lima-run"}, {"restartPolicy": "Never"}, options
    )
    return pod


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
