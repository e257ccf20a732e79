"""Operator settings, from `LIMA_OPERATOR_*` environment variables (the chart sets them)."""

from __future__ import annotations

import socket
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lima.k8s.rayjob import RAY_VERSION, RayJobOptions, S3Ref
from lima.settings import Settings


class OperatorConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIMA_OPERATOR_", extra="ignore")

    namespace: str = "default"
    """Namespace of the operator itself, where the pools ConfigMap lives."""

    image: str = "ghcr.io/lima-run/runtime:0.1.0"
    """Runtime image (Ray + lima-run) of every RayJob."""

    image_pull_policy: str = "IfNotPresent"
    pools_configmap: str = "lima-run-pools"
    s3_secret: str = "lima-run-s3"
    """Secret with the S3 credentials, in the Experiment's namespace (referenced, never read)."""

    s3_access_key_key: str = "accessKey"
    s3_secret_key_key: str = "secretKey"
    reconcile_interval_s: float = 60.0
    """Safety-net resync: every known Experiment is reconciled this often. RayJob progress
    arrives through the RayJob watch at once; this only catches what a watch missed."""

    pools_cache_s: float = 10.0
    """How long the pools ConfigMap read is reused across Experiments."""

    metrics_port: int = 9090
    """Prometheus metrics port; 0 turns the endpoint off."""

    ray_version: str = RAY_VERSION
    ray_service_account: str | None = None
    head_cpu: str = "1"
    head_memory: str = "2Gi"
    ttl_seconds_after_finished: int = 600
    pre_running_deadline_seconds: int = 1800
    """Set on RayJobs only when the installed KubeRay's CRD declares the field (>= 1.6)."""

    default_stage_timeout_s: int = 86400
    """activeDeadlineSeconds of a stage that sets no `timeout_s`."""

    autoscaler_cpu: str = "500m"
    autoscaler_memory: str = "512Mi"
    head_placement: dict[str, Any] = Field(default_factory=dict)
    """nodeSelector / tolerations / affinity / priorityClassName of every head pod (JSON)."""

    image_pull_secrets: list[dict[str, str]] = Field(default_factory=list)
    """`[{"name": ...}]` for every Ray pod (JSON; the chart's `imagePullSecrets`)."""

    store_timeout_s: float = 10.0
    """Longest wait for one artifact-store call before the Experiment is StoreUnavailable."""

    source_listing_cache_s: float = 10.0
    """How long an s3:// source listing (the curate key's fingerprint) is reused across
    Experiments: N Experiments naming the same data cost one LIST per source, not N."""

    api_timeout_s: float = 30.0
    """Longest wait for one Kubernetes API call of the operator's own client."""

    leader_election: bool = False
    """Act only while holding the Lease `lease_name` (the chart turns it on: replicas > 1)."""

    lease_name: str = "lima-run-operator"
    lease_duration_s: float = 15.0
    identity: str = Field(default_factory=socket.gethostname)
    """This replica's name in the Lease (the pod name, from the downward API)."""

    default_queue: str | None = None
    """Kueue LocalQueue for stages that name none (chart: kueue.enabled + kueue.defaultQueue)."""

    judge_secret: str | None = None
    """Secret whose `apiKey` becomes LIMA_JUDGE_API_KEY in the RayJobs (optional)."""

    gc_tuning: bool = True
    """Freeze start-up's objects out of garbage collection and collect less often
    (handlers.GC_THRESHOLD): no collector pause in the middle of a burst of new Experiments.
    Process-wide, so off where the operator shares a process (the in-process tests)."""

    def rayjob_options(
        self, settings: Settings, *, pre_running_deadline: bool = False
    ) -> RayJobOptions:
        """`pre_running_deadline`: the installed KubeRay knows `preRunningDeadlineSeconds`."""
        extra = []
        if settings.judge_base_url:
            extra.append(("LIMA_JUDGE_BASE_URL", settings.judge_base_url))
        if settings.judge_model:
            extra.append(("LIMA_JUDGE_MODEL", settings.judge_model))
        secret_env = (
            (("LIMA_JUDGE_API_KEY", self.judge_secret, "apiKey"),) if self.judge_secret else ()
        )
        return RayJobOptions(
            ray_version=self.ray_version,
            image_pull_policy=self.image_pull_policy,
            head_cpu=self.head_cpu,
            head_memory=self.head_memory,
            ttl_seconds_after_finished=self.ttl_seconds_after_finished,
            pre_running_deadline_seconds=(
                self.pre_running_deadline_seconds if pre_running_deadline else None
            ),
            default_timeout_s=self.default_stage_timeout_s,
            autoscaler_cpu=self.autoscaler_cpu,
            autoscaler_memory=self.autoscaler_memory,
            head_placement=dict(self.head_placement),
            image_pull_secrets=tuple(s["name"] for s in self.image_pull_secrets if s.get("name")),
            service_account=self.ray_service_account,
            extra_env=tuple(extra),
            secret_env=secret_env,
            default_queue=self.default_queue,
        )

    def s3_ref(self, settings: Settings) -> S3Ref:
        return S3Ref(
            secret=self.s3_secret,
            endpoint=settings.s3_endpoint,
            bucket=settings.bucket,
            access_key_key=self.s3_access_key_key,
            secret_key_key=self.s3_secret_key_key,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
