"""The RayJob builder: every variant validates against KubeRay's own RayJob CRD."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from k8s_helpers import errors, rayjob_validator

from lima.k8s.pools import Pool, Toleration, check_pools, load_pools
from lima.k8s.rayjob import MAX_RAYJOB_NAME, S3Ref, build_rayjob, rayjob_name
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
    assert spec["entrypoint"] == f"python -m jobs.{stage} --experiment s3://lima/lima/specs/x.json"
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
    exp = experiment(train={"workers": 3})
    elastic = build(exp, "train", pool=CPU)
    _check(elastic)
    group = elastic["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert elastic["spec"]["rayClusterSpec"]["enableInTreeAutoscaling"] is True
    assert (group["minReplicas"], group["maxReplicas"]) == (0, 3)
    fixed = build(exp, "train", pool=CPU_FIXED)
    _check(fixed)
    group = fixed["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert fixed["spec"]["rayClusterSpec"]["enableInTreeAutoscaling"] is False
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (3, 3, 3)


def test_kueue_variant_is_suspended_and_labelled() -> None:
    job = build(experiment(generate={"queue": "team-a"}), "generate")
    _check(job)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert job["spec"]["suspend"] is True and job["spec"]["shutdownAfterJobFinishes"] is True
    assert "suspend" not in build(experiment(), "generate")["spec"]


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


def test_every_registered_stage_has_a_job_entrypoint(capsys: pytest.CaptureFixture) -> None:
    import importlib

    from lima.stages import REGISTRY

    for stage in REGISTRY:
        module = importlib.import_module(f"jobs.{stage}")
        assert module.main.__module__ == "jobs._entry"
    from jobs._entry import main

    assert main("curate", ["--experiment", "/no/such/spec.yaml"]) == 2
    assert "no such file" in capsys.readouterr().err
