"""The RayJob builder: every variant validates against KubeRay's own RayJob CRD."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fake_admission import (
    KUBERAY_CRDS,
    NEWEST,
    OLDEST,
    autoscaler_problems,
    kuberay_problems,
    kueue_webhook,
    pruned_fields,
    rayjob_crd,
    schema_errors,
)
from k8s_helpers import errors, rayjob_validator

from lima.k8s.kuberay import InstalledKubeRay, fits, rayjob_schema, unknown_fields
from lima.k8s.pools import Pool, Toleration, check_pools, load_pools
from lima.k8s.rayjob import (
    MAX_INLINE_SPEC,
    MAX_RAYJOB_NAME,
    SPEC_PATH,
    RayJobOptions,
    S3Ref,
    build_rayjob,
    rayjob_name,
    stage_rayjob_name,
)
from lima.spec import load as spec_load

REPO = Path(__file__).resolve().parents[1]
STAGES = ["curate", "train", "select", "generate", "judge", "report"]
VALIDATOR = rayjob_validator()
needs_kuberay = pytest.mark.skipif(VALIDATOR is None, reason="../shared/schemas is absent")

CPU = Pool(name="cpu", cpusPerWorker=4, memoryPerWorker="16Gi", minWorkers=0, maxWorkers=4)
CPU_FIXED = Pool(name="cpu", cpusPerWorker=4, memoryPerWorker="16Gi", minWorkers=4, maxWorkers=4)
GPU = Pool(
    name="gpu",
    nodeSelector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    tolerations=[Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")],
    gpuType="H100",
    gpusPerWorker=8,
    cpusPerWorker=32,
    memoryPerWorker="512Gi",
    minWorkers=1,
    maxWorkers=4,
)
S3 = S3Ref(secret="lima-s3", endpoint="lima-minio:9000", bucket="lima")


def experiment(name: str = "demo", **resources: dict[str, Any]):
    document = spec_load.yaml.safe_load((REPO / "examples/experiment.yaml").read_text())
    document["metadata"]["name"] = name
    document["spec"].setdefault("resources", {}).update(resources)
    return spec_load.parse_experiment(document)


def build(exp, stage: str, pool: Pool = CPU, **kw: Any) -> dict[str, Any]:
    return build_rayjob(
        exp,
        stage,
        key="0123456789abcdef0123456789abcdef",
        spec_uri="s3://lima/lima/specs/x.json",
        namespace="ml",
        image="ghcr.io/lima-run/runtime:0.1.0",
        pool=pool,
        s3=S3,
        **kw,
    )


def _check(job: dict[str, Any]) -> None:
    if VALIDATOR is not None:
        assert errors(VALIDATOR, job) == []
    if KUBERAY_CRDS[OLDEST].is_file():
        # Nothing the oldest supported KubeRay would prune: no field we rely on may vanish.
        for version in (OLDEST, NEWEST):
            assert schema_errors(job, version) == [], version
            assert pruned_fields(job, version) == [], version
    assert autoscaler_problems(job) == [] and kuberay_problems(job) == []
    assert len(job["metadata"]["name"]) <= MAX_RAYJOB_NAME
    text = json.dumps(job)
    assert "secretKeyRef" in text and "LIMA_S3_SECRET_KEY" in text
    for container in _containers(job):
        for env in container.get("env", []):
            if "KEY" in env["name"] or "SECRET" in env["name"]:
                assert "value" not in env, f"{env['name']} given as a literal"


def _containers(job: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = job["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"], job["spec"]["submitterPodTemplate"]]
    pods += [g["template"] for g in cluster["workerGroupSpecs"]]
    return [c for pod in pods for c in pod["spec"]["containers"]]


@needs_kuberay
def test_kuberay_schema_rejects_a_bad_rayjob() -> None:
    job = build(experiment(), "train")
    job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "two"
    assert errors(VALIDATOR, job)


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_builds_a_valid_rayjob(stage: str) -> None:
    job = build(experiment(), stage)
    _check(job)
    spec = job["spec"]
    assert spec["entrypoint"] == f"lima stage {stage} --experiment s3://lima/lima/specs/x.json"
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    assert job["metadata"]["labels"]["lima-run.io/stage"] == stage
    assert job["metadata"]["labels"]["lima-run.io/experiment"] == "demo"
    for container in _containers(job):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
    pod = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_gpu_pool_variant() -> None:
    exp = experiment(
        train={
            "pool": "gpu",
            "workers": 4,
            "gpus": 8,
            "cpus": 16,
            "memory": "256Gi",
            "timeout_s": 7200,
            "retries": 2,
        }
    )
    job = build(exp, "train", pool=GPU)
    _check(job)
    group = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    worker = group["template"]["spec"]
    assert worker["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert worker["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert worker["containers"][0]["resources"]["requests"]["memory"] == "256Gi"
    assert group["rayStartParams"]["num-gpus"] == "8"
    assert job["spec"]["activeDeadlineSeconds"] == 7200 and job["spec"]["backoffLimit"] == 2


def test_elastic_and_fixed_pools() -> None:
    exp = experiment(train={"workers": 4})
    elastic = build(exp, "train", pool=CPU)
    _check(elastic)
    group = elastic["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert elastic["spec"]["rayClusterSpec"]["enableInTreeAutoscaling"] is True
    assert (group["minReplicas"], group["maxReplicas"]) == (0, 4)
    head = elastic["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert "automountServiceAccountToken" not in head  # the autoscaler needs the token
    autoscaler = elastic["spec"]["rayClusterSpec"]["autoscalerOptions"]["resources"]
    assert autoscaler["requests"] == autoscaler["limits"] == {"cpu": "500m", "memory": "512Mi"}
    worker = group["template"]["spec"]
    assert worker["automountServiceAccountToken"] is False
    fixed = build(exp, "train", pool=CPU_FIXED)
    _check(fixed)
    group = fixed["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert fixed["spec"]["rayClusterSpec"]["enableInTreeAutoscaling"] is False
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (4, 4, 4)
    head = fixed["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert head["automountServiceAccountToken"] is False  # no autoscaler: no API access


@pytest.mark.parametrize("pool", [CPU, CPU_FIXED, GPU], ids=["elastic", "fixed", "gpu"])
def test_kueue_variant_is_admitted_by_the_webhook(pool: Pool) -> None:
    resources = {"queue": "team-a", "workers": 3, "pool": pool.name}
    if pool is GPU:
        resources.update(gpus=8, cpus=16, memory="256Gi")
    job = build(experiment(generate=resources), "generate", pool=pool)
    _check(job)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert job["spec"]["suspend"] is True and job["spec"]["shutdownAfterJobFinishes"] is True
    assert kueue_webhook(job) == []
    # Kueue reserves the whole job up front: a queued stage has a fixed worker count.
    group = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert job["spec"]["rayClusterSpec"]["enableInTreeAutoscaling"] is False
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (3, 3, 3)
    assert "suspend" not in build(experiment(), "generate")["spec"]


def test_kueue_default_queue_from_the_chart() -> None:
    job = build(experiment(), "train", options=RayJobOptions(default_queue="lima-queue"))
    _check(job)
    assert kueue_webhook(job) == []
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "lima-queue"


def test_fake_kueue_webhook_rejects_what_kueue_rejects() -> None:
    job = build(experiment(generate={"queue": "team-a"}), "generate")
    job["spec"]["rayClusterSpec"]["enableInTreeAutoscaling"] = True  # the old, broken builder
    assert any("enableInTreeAutoscaling" in e for e in kueue_webhook(job))
    job["metadata"]["annotations"] = {"kueue.x-k8s.io/elastic-job": "true"}
    assert any("enableInTreeAutoscaling" in e for e in kueue_webhook(job))  # gate off
    assert kueue_webhook(job, elastic_jobs_gate=True) == []
    job["spec"]["shutdownAfterJobFinishes"] = False
    job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["groupName"] = "head"
    problems = kueue_webhook(job, elastic_jobs_gate=True)
    assert len(problems) == 2, problems


def test_autoscaler_rule_catches_a_head_without_token() -> None:
    job = build(experiment(train={"workers": 4}), "train", pool=CPU)
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    head["automountServiceAccountToken"] = False  # what the builder used to write
    assert autoscaler_problems(job)


def test_default_stage_deadline() -> None:
    job = build(experiment(), "train")
    assert job["spec"]["activeDeadlineSeconds"] == RayJobOptions().default_timeout_s
    job = build(experiment(train={"timeout_s": 600}), "train")
    assert job["spec"]["activeDeadlineSeconds"] == 600


@pytest.mark.skipif(not KUBERAY_CRDS[OLDEST].is_file(), reason="../shared/schemas is absent")
def test_pre_running_deadline_only_where_the_installed_crd_knows_it() -> None:
    options = RayJobOptions(pre_running_deadline_seconds=1800)
    job = build(experiment(), "train", options=options)
    # The stand-in finds what the oldest supported version would prune...
    assert pruned_fields(job, OLDEST) == ["spec.preRunningDeadlineSeconds"]
    assert pruned_fields(job, "1.6.2") == [] and pruned_fields(job, NEWEST) == []
    # ...and so does the operator's own check, with which it refuses to create such a job.
    old = InstalledKubeRay(present=True, schema=rayjob_schema(rayjob_crd(OLDEST)))
    new = InstalledKubeRay(present=True, schema=rayjob_schema(rayjob_crd(NEWEST)))
    assert unknown_fields(job, old.schema) == ["spec.preRunningDeadlineSeconds"]
    assert not fits(job, old.schema) and fits(job, new.schema)
    assert not old.pre_running_deadline and new.pre_running_deadline
    assert "too old" in old.problem(job) and new.problem(job) is None
    assert "not installed" in InstalledKubeRay(present=False).problem(job)
    assert InstalledKubeRay().problem(job) is None  # unreadable CRD: nothing assumed


ZONE_A = {
    "nodeSelectorTerms": [{"matchExpressions": [{"key": "z", "operator": "In", "values": ["a"]}]}]
}


def test_pool_and_head_overrides() -> None:
    pool = GPU.model_copy(
        update={
            "image": "ghcr.io/lima-run/runtime:0.1.0-cuda",
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": ZONE_A}
            },
            "priorityClassName": "training",
            "volumes": [{"name": "hf-cache", "persistentVolumeClaim": {"claimName": "hf"}}],
            "volumeMounts": [{"name": "hf-cache", "mountPath": "/cache/hf"}],
            "imagePullSecrets": [{"name": "gpu-registry"}],
        }
    )
    options = RayJobOptions(
        image_pull_secrets=("registry",),
        head_placement={"nodeSelector": {"pool": "system"}, "priorityClassName": "ops"},
    )
    exp = experiment(train={"pool": "gpu", "workers": 2, "gpus": 8, "cpus": 16, "memory": "64Gi"})
    job = build(exp, "train", pool=pool, options=options)
    _check(job)
    cluster = job["spec"]["rayClusterSpec"]
    worker = cluster["workerGroupSpecs"][0]["template"]["spec"]
    assert worker["containers"][0]["image"].endswith("-cuda")
    assert worker["priorityClassName"] == "training" and "nodeAffinity" in worker["affinity"]
    assert {"name": "hf-cache", "mountPath": "/cache/hf"} in worker["containers"][0]["volumeMounts"]
    assert [s["name"] for s in worker["imagePullSecrets"]] == ["registry", "gpu-registry"]
    head = cluster["headGroupSpec"]["template"]["spec"]
    assert head["nodeSelector"] == {"pool": "system"} and head["priorityClassName"] == "ops"
    assert head["containers"][0]["image"] == "ghcr.io/lima-run/runtime:0.1.0"
    assert head["imagePullSecrets"] == [{"name": "registry"}]


def cluster_experiment(**resources: dict[str, Any]):
    document = spec_load.yaml.safe_load((REPO / "examples/experiment-cluster.yaml").read_text())
    document["spec"].setdefault("resources", {}).update(resources)
    return spec_load.parse_experiment(document)


def carry(exp, stage: str, pool: Pool = CPU, **kw: Any) -> tuple[dict[str, Any], str]:
    """A RayJob carrying `exp` (the document the operator carries: lima_operator.artifacts)."""
    text = json.dumps(
        exp.model_dump(mode="json", exclude={"metadata": {"namespace"}}), separators=(",", ":")
    )
    job = build_rayjob(
        exp,
        stage,
        key="0123456789abcdef0123456789abcdef",
        spec_document=text,
        spec_digest="0123456789abcdef",
        namespace="ml",
        image="ghcr.io/lima-run/runtime:0.1.0",
        pool=pool,
        s3=S3,
        **kw,
    )
    return job, text


# Pod Security Standards, "restricted": the only volume types a pod may use.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


@pytest.mark.parametrize("pool", [CPU, CPU_FIXED, GPU])
@pytest.mark.parametrize("queue", [None, "team-a"])
def test_the_spec_travels_in_the_rayjob(pool: Pool, queue: str | None, tmp_path: Path) -> None:
    """The stage's spec is an annotation of the head pod, projected read-only by the kubelet
    (downward API) where the entrypoint reads it: nothing is written before the RayJob exists,
    and the job runs exactly what its manifest shows. Valid on the oldest and newest supported
    KubeRay, restricted pods, autoscaler and Kueue rules unchanged."""
    from operator_harness import carried_spec

    resources = {"pool": pool.name, "workers": 1, "queue": queue}
    if pool is GPU:
        resources.update(gpus=8, cpus=32, memory="512Gi")
    exp = cluster_experiment(train=resources)
    job, text = carry(exp, "train", pool)
    _check(job)
    if queue:
        assert kueue_webhook(job) == []
    assert job["spec"]["entrypoint"] == f"lima stage train --experiment {SPEC_PATH}"
    assert job["metadata"]["annotations"]["lima-run.io/spec-digest"] == "0123456789abcdef"
    ran = carried_spec(job, tmp_path)  # as the kubelet projects it and `lima stage` loads it
    assert ran.model_dump(mode="json") == exp.model_dump(mode="json")
    cluster = job["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]
    assert head["metadata"]["annotations"] == {"lima-run.io/experiment": text}
    assert len(text.encode()) < MAX_INLINE_SPEC / 4  # the example is far below the limit
    # Only the head (where the driver runs) gets the file; every pod stays "restricted".
    pods = [head, job["spec"]["submitterPodTemplate"]]
    pods += [g["template"] for g in cluster["workerGroupSpecs"]]
    for pod in pods:
        for volume in pod["spec"].get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= RESTRICTED_VOLUMES, volume
        carried = "downwardAPI" in json.dumps(pod["spec"].get("volumes", []))
        assert carried == (pod is head)
    assert text not in json.dumps([p for p in pods if p is not head])


def test_the_spec_is_carried_or_referenced_never_both_and_bounded() -> None:
    exp = cluster_experiment()
    with pytest.raises(ValueError, match="either"):
        build(exp, "train", spec_document="{}")
    big = "x" * (MAX_INLINE_SPEC + 1)
    with pytest.raises(ValueError, match="spec_uri"):
        build_rayjob(
            exp,
            "train",
            key="k",
            spec_document=big,
            namespace="ml",
            image="i",
            pool=CPU,
            s3=S3,
        )
    # The kubelet refuses a pod whose annotations total over 256 KiB (KubeRay adds its own).
    assert MAX_INLINE_SPEC <= 128 * 1024


def test_volume_mounts_must_name_a_volume() -> None:
    from lima.errors import LimaError

    with pytest.raises(LimaError, match="volumeMounts"):
        load_pools("gpu: {volumeMounts: [{name: nope, mountPath: /x}]}")


def test_resources_edit_gives_a_new_rayjob_name() -> None:
    key = "0123456789abcdef0123456789abcdef"
    before = stage_rayjob_name(experiment(train={"gpus": 0}), "train", key, 0)
    assert before == stage_rayjob_name(experiment(train={"gpus": 0}), "train", key, 0)
    for edit in ({"gpus": 1}, {"pool": "gpu"}, {"timeout_s": 60}, {"workers": 4}):
        assert stage_rayjob_name(experiment(train=edit), "train", key, 0) != before, edit
    assert build(experiment(train={"gpus": 0}), "train")["metadata"]["name"] == before


def test_owner_reference() -> None:
    owner = {
        "apiVersion": "lima-run.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "demo", "uid": "u-1"},
    }
    job = build(experiment(), "curate", owner=owner)
    _check(job)
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_names_are_deterministic_and_short() -> None:
    longest = "a" * 30
    for stage in [*STAGES, "a-very-long-stage-name"]:
        name = rayjob_name(longest, stage, "k" * 32)
        assert len(name) <= MAX_RAYJOB_NAME and not name.startswith("-")
        assert name == rayjob_name(longest, stage, "k" * 32)
    assert rayjob_name("demo", "train", "k1") != rayjob_name("demo", "train", "k2")
    assert rayjob_name("demo", "train", "k1", 0) != rayjob_name("demo", "train", "k1", 1)
    _check(build(experiment(longest), "generate"))


def test_check_pools_messages_are_path_precise() -> None:
    pools = load_pools(
        "cpu: {cpusPerWorker: 2, memoryPerWorker: 8Gi, maxWorkers: 2}\n"
        "gpu: {gpusPerWorker: 1, maxWorkers: 1}\n"
    )
    assert check_pools(experiment(), pools) == []
    bad = experiment(
        train={"pool": "gpu", "workers": 2, "gpus": 4},
        curate={"pool": "tpu"},
        generate={"memory": "64Gi", "cpus": 3},
    )
    problems = check_pools(bad, pools)
    assert "spec.resources.curate.pool: unknown pool 'tpu' (known: cpu, gpu)" in problems
    assert (
        "spec.resources.train.workers: must be <= 1 (maxWorkers of pool 'gpu') (got 2)" in problems
    )
    assert (
        "spec.resources.train.gpus: must be <= 1 (gpusPerWorker of pool 'gpu') (got 4)" in problems
    )
    assert any(p.startswith("spec.resources.generate.memory:") for p in problems)
    assert any(p.startswith("spec.resources.generate.cpus:") for p in problems)


def test_bad_pools_file_names_the_field() -> None:
    from lima.errors import LimaError

    with pytest.raises(LimaError, match=r"pools\.gpu\.gpusPerWorker"):
        load_pools("gpu: {gpusPerWorker: -1}")


def test_every_stage_runs_through_the_one_cli_entrypoint() -> None:
    """RayJobs run `lima stage NAME --experiment URI`: same CLI, same exit-code contract."""
    import subprocess
    import sys

    from lima import dag

    for stage in dag.NAMES:
        entrypoint = build(experiment(), stage)["spec"]["entrypoint"]
        assert entrypoint.split()[:3] == ["lima", "stage", stage]
    missing = subprocess.run(
        [sys.executable, "-m", "lima.cli", "stage", "curate", "--experiment", "/no/such/x.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2, missing.stderr
    assert "no such file" in missing.stderr.lower() and "Traceback" not in missing.stderr
