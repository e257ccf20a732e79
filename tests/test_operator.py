"""The operator, in-process against kmock: stages, cache hits, failures, restarts, deletion."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import socket
import threading
import time
import urllib.request

import kopf
import pytest
from fake_admission import NEWEST, OLDEST, AdmittingEmulator
from operator_harness import (
    EXPERIMENTS,
    LEASES,
    NS,
    RAYJOBS,
    REPO,
    Operator,
    carried_spec,
    example,
    experiment_status,
    objects,
    posted_events,
    publish,
    requests,
    set_rayjob_status,
    wait_for,
)

from lima.results import JudgeResult

# kmock plus what a real API server does to RayJobs on create (pruning per KubeRay version,
# Kueue's webhook, admission errors): tests/fake_admission.py.
pytestmark = [pytest.mark.timeout(120), pytest.mark.kmock(cls=AdmittingEmulator)]
CRD_KEY = ("apiextensions.k8s.io/v1/customresourcedefinitions", None, "rayjobs.ray.io")
POOLS = "cpu: {cpusPerWorker: 4, memoryPerWorker: 16Gi, minWorkers: 0, maxWorkers: 4}\n"


@pytest.fixture
async def cluster(kmock, s3_settings, monkeypatch):
    """kmock + the real operator + a real S3 API (moto) seeded with the demo data, the way
    `lima data push examples/data s3://lima/demo/data` seeds the chart's MinIO."""
    from operator_harness import declare

    from lima.transfer import push

    settings = s3_settings
    # moto keeps its buckets per process, not per server: start every test from an empty S3.
    reset = f"http://{settings.s3_endpoint}/moto-api/reset"
    urllib.request.urlopen(urllib.request.Request(reset, method="POST"), timeout=10).close()
    push(REPO / "examples/data", "s3://lima/demo/data", settings)
    declare(kmock)
    kmock.kuberay = OLDEST  # the oldest supported KubeRay: its CRD prunes what it lacks
    kmock.install_kuberay_crd()
    kmock.objects["v1/configmaps", NS, "lima-run-pools"] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "lima-run-pools", "namespace": NS},
        "data": {"pools.yaml": POOLS},
    }
    operator = Operator(kmock, settings, monkeypatch)
    await operator.start()
    yield kmock, settings, operator
    if operator.running:
        await operator.stop()


async def create(kmock, document) -> None:
    url = f"/apis/lima-run.io/v1alpha1/namespaces/{NS}/experiments"
    async with kmock.post(url, json=document) as response:
        assert response.status < 400, await response.text()


def rayjob_for(kmock, stage: str) -> dict:
    jobs = [
        j
        for j in objects(kmock, RAYJOBS).values()
        if j["metadata"]["labels"]["lima-run.io/stage"] == stage
    ]
    return jobs[0] if len(jobs) == 1 else None


async def finish(kmock, settings, document, stage: str, result=None) -> None:
    job = await wait_for(lambda: rayjob_for(kmock, stage), what=f"RayJob of {stage}")
    await set_rayjob_status(
        kmock, job["metadata"]["name"], jobDeploymentStatus="Running", jobStatus="RUNNING"
    )
    publish(settings, document, stage, result)  # what `lima stage` does inside the RayJob
    await set_rayjob_status(
        kmock, job["metadata"]["name"], jobDeploymentStatus="Complete", jobStatus="SUCCEEDED"
    )


async def test_cache_hit_then_each_stage_in_order(cluster, tmp_path) -> None:
    kmock, settings, _ = cluster
    document = example()
    publish(settings, document, "curate")  # already produced (e.g. by `lima run` on a laptop)
    await create(kmock, document)

    job = await wait_for(lambda: rayjob_for(kmock, "train"), what="train RayJob")
    assert rayjob_for(kmock, "curate") is None, "a cached stage must not get a RayJob"
    meta, spec = job["metadata"], job["spec"]
    assert len(meta["name"]) <= 47 and meta["name"].startswith("demo-train-")
    assert meta["ownerReferences"][0]["uid"] == "uid-demo"
    assert meta["labels"]["lima-run.io/experiment"] == "demo"
    assert spec["entrypoint"] == "lima stage train --experiment /etc/lima-run/experiment.json"
    workers = spec["rayClusterSpec"]["workerGroupSpecs"][0]
    assert workers["maxReplicas"] == 2  # spec.resources.train.workers of the example
    status = await wait_for(
        lambda: experiment_status(kmock).get("phase") == "Running" and experiment_status(kmock)
    )
    assert status["stages"][0] == {**status["stages"][0], "name": "curate", "phase": "Cached"}
    assert status["currentStage"] == "train" and status["stagesTotal"] == 6
    assert_runs_the_spec_of(job, status, settings, tmp_path)
    assert "specUri" not in status  # nothing was written to the store for it

    selected, judged = select_and_judge_results()
    for stage, result in (
        ("train", None),
        ("select", selected),
        ("generate", None),
        ("judge", judged),
        ("report", None),
    ):
        await wait_for(lambda stage=stage: rayjob_for(kmock, stage), what=f"{stage} RayJob")
        await finish(kmock, settings, document, stage, result)
    status = await wait_for(
        lambda: experiment_status(kmock).get("phase") == "Succeeded" and experiment_status(kmock),
        what="Succeeded",
    )
    assert [s["phase"] for s in status["stages"]] == ["Cached"] + ["Succeeded"] * 5
    # The printer columns come from the select and judge stages' own result types.
    assert status["stagesDone"] == 6 and status["bestEpoch"] == 3
    assert status["winRate"] == "50% win, 25% tie vs base"
    assert status["judgeProxy"] is False and "selectionFallback" not in status
    assert all(s["artifactUri"] for s in status["stages"])
    assert len(objects(kmock, RAYJOBS)) == 5
    assert_declared_in_crd(status)
    assert_admitted_unchanged(kmock)


def assert_runs_the_spec_of(job, status, settings, folder) -> None:
    """The RayJob carries the spec it runs: read as the kubelet and `lima stage` read it, it is
    the spec the Experiment's status names (same digest, also the RayJob's annotation), and no
    credential is anywhere in the RayJob (only Secret references)."""
    from lima_operator.artifacts import spec_digest

    ran = carried_spec(job, folder)
    assert ran.metadata.name == job["metadata"]["labels"]["lima-run.io/experiment"]
    assert spec_digest(ran) == status["specDigest"]
    # checkable without lima: the digest is sha256 of the carried spec, keys sorted, compact
    template = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    carried = json.loads(template["metadata"]["annotations"]["lima-run.io/experiment"])
    canonical = json.dumps(carried["spec"], sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest()[:16] == status["specDigest"]
    assert job["metadata"]["annotations"]["lima-run.io/spec-digest"] == status["specDigest"]
    text = json.dumps(job)
    for credential in (settings.s3_access_key, settings.s3_secret_key):
        assert credential.get_secret_value() not in text


async def test_a_spec_too_large_to_carry_is_read_from_a_store_snapshot(
    cluster, monkeypatch
) -> None:
    """Over MAX_INLINE_SPEC (a pod's annotations are limited), the RayJob reads an immutable,
    content-addressed snapshot in the store, written before the RayJob is created."""
    import lima_operator.reconcile
    from lima_operator.artifacts import spec_digest

    from lima.spec.load import parse_yaml, spec_text
    from lima.store.sources import read_uri

    kmock, settings, _ = cluster
    monkeypatch.setattr(lima_operator.reconcile, "MAX_INLINE_SPEC", 100)
    await create(kmock, example())
    job = await wait_for(lambda: rayjob_for(kmock, "curate"), what="curate RayJob")
    uri = job["spec"]["entrypoint"].split()[-1]
    assert uri.startswith("s3://lima/lima/specs/ns1/demo/") and uri.endswith(".json")
    template = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    assert "annotations" not in template["metadata"]  # nothing carried
    status = await wait_for(
        lambda: experiment_status(kmock).get("specUri") and experiment_status(kmock)
    )
    assert status["specUri"] == uri
    snapshot = parse_yaml(spec_text(read_uri(uri, settings), uri), uri)  # as `lima stage` does
    assert spec_digest(snapshot) == status["specDigest"] in uri


def assert_admitted_unchanged(kmock) -> None:
    """Every RayJob the operator created lost nothing to pruning on the installed (oldest
    supported) KubeRay, and KubeRay's autoscaler could scale each elastic one."""
    assert kmock.admitted
    for seen in kmock.admitted:
        problems = seen["pruned"] + seen["autoscaler"] + seen["kuberay"]
        assert problems == [], seen["job"]["metadata"]
        assert "preRunningDeadlineSeconds" not in seen["job"]["spec"]  # 1.4.2 lacks it
        assert seen["job"]["spec"]["activeDeadlineSeconds"] > 0


def select_and_judge_results():
    """What the select and judge stages return, built by their own code from verdicts."""
    from lima.judging import win_tie_loss
    from lima.judging.selection import by_score
    from lima.judging.types import Verdict
    from lima.results import SelectResult
    from lima.stages.judge import headline

    rows = [
        {"epoch": 2, "score": 0.5, "reference": True},
        {"epoch": 3, "score": 0.75, "reference": False},
    ]
    best = by_score(rows)  # how the select stage picks the epoch
    selected = SelectResult(
        selected_epoch=best["epoch"], score=best["score"], judge="t", proxy=False, epochs=[2, 3]
    )
    values = ["win", "win", "tie", "loss"]
    verdicts = [Verdict(f"p{i}", "pairwise", value, True, []) for i, value in enumerate(values)]
    judged_set = {"pairwise": {"base": win_tie_loss(verdicts, resamples=50, seed=0)}}
    judged = JudgeResult(
        judge="t",
        proxy=False,
        verdicts=4,
        invalid=0,
        headline=headline({"test": judged_set}, ["base"]),
    )
    return selected, judged


def assert_declared_in_crd(status: dict) -> None:
    """The API server prunes undeclared status fields: everything written must be declared."""
    from lima.k8s.crd import status_schema

    schema = status_schema()["properties"]
    assert set(status) - {"kopf"} <= set(schema), set(status) - set(schema)
    stage_fields = set(schema["stages"]["items"]["properties"])
    for stage in status.get("stages", []):
        assert set(stage) <= stage_fields, set(stage) - stage_fields
    condition_fields = set(schema["conditions"]["items"]["properties"])
    for condition in status["conditions"]:
        assert set(condition) <= condition_fields


async def test_failure_marks_failed_with_event_then_retry(cluster) -> None:
    kmock, _, _ = cluster
    document = example()
    await create(kmock, document)
    job = await wait_for(lambda: rayjob_for(kmock, "curate"), what="curate RayJob")
    await set_rayjob_status(
        kmock, job["metadata"]["name"], jobDeploymentStatus="Complete", jobStatus="STOPPED"
    )  # Complete but not SUCCEEDED: a failure
    status = await wait_for(
        lambda: experiment_status(kmock).get("phase") == "Failed" and experiment_status(kmock),
        what="Failed",
    )
    assert status["currentStage"] == "curate"
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and failed["reason"] == "Stopped"
    assert [s["phase"] for s in status["stages"]] == ["Failed"] + ["Pending"] * 5
    await wait_for(lambda: posted_events(kmock, "StageFailed"), what="StageFailed event")
    assert rayjob_for(kmock, "train") is None

    # Documented retry: bump the annotation; a fresh RayJob (new name) replaces the failed one.
    url = f"/apis/lima-run.io/v1alpha1/namespaces/{NS}/experiments/demo"
    async with kmock.patch(url, json={"metadata": {"annotations": {"lima-run.io/retry": "1"}}}):
        pass
    retried = await wait_for(
        lambda: (
            (j := rayjob_for(kmock, "curate"))
            and j["metadata"]["name"] != job["metadata"]["name"]
            and j
        ),
        what="retried RayJob",
    )
    assert retried["metadata"]["name"].startswith("demo-curate-")
    await wait_for(lambda: experiment_status(kmock).get("phase") == "Running", what="Running")


async def test_restart_adopts_existing_rayjob_and_deletion_uses_owner_refs(cluster) -> None:
    kmock, settings, operator = cluster
    document = example()
    await create(kmock, document)
    job = await wait_for(lambda: rayjob_for(kmock, "curate"), what="curate RayJob")
    await operator.stop()
    await operator.start()  # a new operator process mid-stage
    await set_rayjob_status(
        kmock, job["metadata"]["name"], jobDeploymentStatus="Running", jobStatus="RUNNING"
    )
    await wait_for(
        lambda: (experiment_status(kmock).get("stages") or [{}])[0].get("phase") == "Running",
        what="stage Running after restart",
    )
    creates = [
        r for r in requests(kmock) if str(r.method).endswith("POST") and "rayjobs" in str(r.url)
    ]
    assert len(creates) == 1 and len(objects(kmock, RAYJOBS)) == 1

    url = f"/apis/lima-run.io/v1alpha1/namespaces/{NS}/experiments/demo"
    async with kmock.delete(url):
        pass
    await wait_for(lambda: "demo" not in objects(kmock, EXPERIMENTS), what="Experiment gone")
    # kmock has no garbage collector: check the ownerReference it would act on, then emulate it.
    owners = [
        o["uid"]
        for j in objects(kmock, RAYJOBS).values()
        for o in j["metadata"]["ownerReferences"]
        if o.get("blockOwnerDeletion")
    ]
    assert owners == ["uid-demo"]
    for name in list(objects(kmock, RAYJOBS)):
        async with kmock.delete(f"/apis/ray.io/v1/namespaces/{NS}/rayjobs/{name}"):
            pass
    assert objects(kmock, RAYJOBS) == {}
    assert publish(settings, document, "curate").uri  # artifacts stay in the store


async def test_spec_change_restarts_from_first_changed_stage(cluster) -> None:
    kmock, settings, _ = cluster
    document = example()
    await create(kmock, document)
    await finish(kmock, settings, document, "curate")
    old = await wait_for(lambda: rayjob_for(kmock, "train"), what="train RayJob")
    changed = copy.deepcopy(document)
    changed["spec"]["train"]["lr"] = 5e-4
    url = f"/apis/lima-run.io/v1alpha1/namespaces/{NS}/experiments/demo"
    async with kmock.patch(url, json={"spec": changed["spec"], "metadata": {"generation": 2}}):
        pass
    new = await wait_for(
        lambda: (
            (j := rayjob_for(kmock, "train"))
            and j["metadata"]["name"] != old["metadata"]["name"]
            and j
        ),
        what="new train RayJob",
    )
    assert (
        new["metadata"]["labels"]["lima-run.io/key"] != old["metadata"]["labels"]["lima-run.io/key"]
    )
    status = await wait_for(
        lambda: (
            experiment_status(kmock).get("observedGeneration") == 2 and experiment_status(kmock)
        ),
        what="generation 2",
    )
    assert status["stages"][0]["phase"] in ("Succeeded", "Cached")  # curate kept: unchanged
    assert (
        len(
            [
                j
                for j in objects(kmock, RAYJOBS).values()
                if j["metadata"]["labels"]["lima-run.io/stage"] == "curate"
            ]
        )
        == 1
    )


async def test_pool_violation_is_invalid_with_paths(cluster) -> None:
    kmock, _, _ = cluster
    document = example()
    document["spec"]["resources"]["train"] = {"workers": 2, "cpus": 8, "pool": "cpu"}
    document["spec"]["resources"]["curate"] = {"pool": "a100"}
    await create(kmock, document)
    status = await wait_for(
        lambda: experiment_status(kmock).get("phase") == "Invalid" and experiment_status(kmock),
        what="Invalid",
    )
    message = next(c for c in status["conditions"] if c["type"] == "Failed")["message"]
    assert "spec.resources.train.cpus: must be <= 4" in message
    assert "spec.resources.curate.pool: unknown pool 'a100'" in message
    assert objects(kmock, RAYJOBS) == {}
    await wait_for(lambda: posted_events(kmock, "PoolLimits"), what="PoolLimits event")


@pytest.mark.parametrize(
    ("deployment", "job", "phase"),
    [
        ("Complete", "SUCCEEDED", "Succeeded"),
        ("Complete", "STOPPED", "Failed"),  # KubeRay sets Complete for STOPPED too
        ("Complete", "FAILED", "Failed"),
        ("Running", "SUCCEEDED", "Running"),  # success needs both fields
        ("Failed", "FAILED", "Failed"),
        ("ValidationFailed", "", "Failed"),
        ("Running", "STOPPED", "Failed"),
        ("Retrying", "FAILED", "Retrying"),
        ("Running", "RUNNING", "Running"),
        ("Initializing", "", "Pending"),
        ("Suspended", "", "Pending"),  # waiting for Kueue admission
        ("", "", "Pending"),
    ],
)
def test_rayjob_status_mapping(deployment: str, job: str, phase: str) -> None:
    from lima_operator.status import rayjob_outcome

    status = {"jobDeploymentStatus": deployment, "jobStatus": job, "reason": "", "message": "m"}
    assert rayjob_outcome({"status": status}).phase == phase


async def test_resync_notices_what_no_watch_reports(cluster, monkeypatch) -> None:
    kmock, settings, operator = cluster
    await operator.stop()
    monkeypatch.setenv("LIMA_OPERATOR_RECONCILE_INTERVAL_S", "0.3")
    await operator.start()
    document = example()
    await create(kmock, document)
    await wait_for(lambda: rayjob_for(kmock, "curate"), what="curate RayJob")
    await wait_for(lambda: experiment_status(kmock).get("currentStage") == "curate", what="status")
    # The artifact appears in the store with no Kubernetes event at all (e.g. `lima run` on a
    # laptop pushed it): only the safety-net resync can notice, and it moves on to train.
    publish(settings, document, "curate")
    await wait_for(lambda: rayjob_for(kmock, "train"), what="train RayJob from the resync")
    started = await wait_for(
        lambda: [e for e in posted_events(kmock, "StageStarted") if "train" in e["message"]],
        what="StageStarted event posted outside kopf's handlers",
    )
    assert started[0]["involvedObject"]["uid"] == "uid-demo"


# ── issue 10: what a real cluster does, and every failure in status ────────────────────────


def failed_condition(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["type"] == "Failed")


def progressing(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["type"] == "Progressing")


@pytest.mark.parametrize(
    ("reject", "phase", "reason", "said"),
    [
        ((403, "Forbidden"), "Pending", "Forbidden", "forbidden"),
        ((422, "Invalid"), "Failed", "RayJobRejected", "invalid"),
    ],
)
async def test_create_errors_land_in_status_within_one_reconcile(
    cluster, reject, phase, reason, said
) -> None:
    kmock, _, _ = cluster
    kmock.reject = reject  # every RayJob create is refused, as RBAC or a webhook would
    await create(kmock, example())
    status = await wait_for(lambda: experiment_status(kmock).get("phase"), what="a phase")
    # The first status the operator writes already says why: no blank phase, no silent retry.
    first = experiment_status(kmock)
    assert status == phase, first
    condition = progressing(first) if phase == "Pending" else failed_condition(first)
    assert condition["reason"] == reason and said in condition["message"].lower()
    assert "rayjobs.ray.io" in condition["message"]
    events = await wait_for(lambda: posted_events(kmock, reason), what=f"{reason} event")
    assert events[0]["type"] == "Warning" and events[0]["involvedObject"]["name"] == "demo"
    assert objects(kmock, RAYJOBS) == {}
    assert_declared_in_crd(first)


async def test_missing_kuberay_lands_in_status(cluster) -> None:
    kmock, _, _ = cluster
    kmock.objects[CRD_KEY].delete()  # KubeRay not installed
    await create(kmock, example())
    status = await wait_for(
        lambda: experiment_status(kmock).get("phase") and experiment_status(kmock), what="status"
    )
    assert status["phase"] == "Pending"
    assert progressing(status)["reason"] == "KubeRayMissing"
    assert "KubeRay is not installed" in progressing(status)["message"]
    await wait_for(lambda: posted_events(kmock, "KubeRayMissing"), what="event")
    assert objects(kmock, RAYJOBS) == {}


async def test_newest_kuberay_gets_the_pre_running_deadline(cluster) -> None:
    kmock, _, _ = cluster
    kmock.kuberay = NEWEST
    kmock.install_kuberay_crd()
    await create(kmock, example())
    job = await wait_for(lambda: rayjob_for(kmock, "curate"), what="curate RayJob")
    assert job["spec"]["preRunningDeadlineSeconds"] == 1800
    assert kmock.admitted[0]["pruned"] == []


async def test_kueue_queued_stages_on_an_elastic_pool_are_admitted(cluster) -> None:
    kmock, _, _ = cluster
    kmock.kueue = True  # Kueue's RayJob webhook, elastic jobs off (its default)
    document = example()
    document["spec"]["resources"]["curate"]["queue"] = "team-a"  # the pool is elastic (0..4)
    await create(kmock, document)
    job = await wait_for(lambda: rayjob_for(kmock, "curate"), what="curate RayJob")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert job["spec"]["suspend"] is True
    assert job["spec"]["rayClusterSpec"]["enableInTreeAutoscaling"] is False
    await wait_for(lambda: experiment_status(kmock).get("phase") == "Running", what="Running")
    assert_admitted_unchanged(kmock)


async def test_local_paths_are_refused_with_the_field(cluster) -> None:
    kmock, _, _ = cluster
    document = example()
    document["spec"]["data"]["sources"][0]["uri"] = "examples/data/stackexchange/*.xml"
    document["spec"]["judge"]["baselines"] = [{"name": "gpt", "answers": "/home/me/gpt.jsonl"}]
    await create(kmock, document)
    status = await wait_for(
        lambda: experiment_status(kmock).get("phase") == "Invalid" and experiment_status(kmock),
        what="Invalid",
    )
    condition = failed_condition(status)
    assert condition["reason"] == "LocalPaths"
    assert (
        "spec.data.sources[0].uri: 'examples/data/stackexchange/*.xml' is a local path"
        in (condition["message"])
    )
    assert "spec.judge.baselines[0].answers: '/home/me/gpt.jsonl'" in condition["message"]
    assert "lima data push" in condition["message"]
    assert objects(kmock, RAYJOBS) == {}


async def test_resources_edit_reaches_the_next_rayjob(cluster) -> None:
    kmock, _, _ = cluster
    document = example()
    await create(kmock, document)
    old = await wait_for(lambda: rayjob_for(kmock, "curate"), what="curate RayJob")
    resources = copy.deepcopy(document["spec"]["resources"])
    resources["curate"] = {"workers": 3, "cpus": 2, "memory": "2Gi", "timeout_s": 900}
    url = f"/apis/lima-run.io/v1alpha1/namespaces/{NS}/experiments/demo"
    patch = {"spec": {"resources": resources}, "metadata": {"generation": 2}}
    async with kmock.patch(url, json=patch):
        pass
    new = await wait_for(
        lambda: (
            (j := rayjob_for(kmock, "curate"))
            and j["metadata"]["name"] != old["metadata"]["name"]
            and j
        ),
        what="a new curate RayJob",
    )
    assert (
        new["metadata"]["labels"]["lima-run.io/key"] == old["metadata"]["labels"]["lima-run.io/key"]
    )
    group = new["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert group["maxReplicas"] == 3 and new["spec"]["activeDeadlineSeconds"] == 900
    assert old["metadata"]["name"] not in objects(kmock, RAYJOBS)  # the stuck one is gone


async def test_suspend_stops_and_resume_restarts(cluster) -> None:
    kmock, _, _ = cluster
    document = example()
    await create(kmock, document)
    old = await wait_for(lambda: rayjob_for(kmock, "curate"), what="curate RayJob")
    url = f"/apis/lima-run.io/v1alpha1/namespaces/{NS}/experiments/demo"
    async with kmock.patch(url, json={"spec": {"suspend": True}}):
        pass
    status = await wait_for(
        lambda: experiment_status(kmock).get("phase") == "Suspended" and experiment_status(kmock),
        what="Suspended",
    )
    assert old["metadata"]["name"] in progressing(status)["message"]
    assert objects(kmock, RAYJOBS) == {}  # the running stage's cluster is freed
    await wait_for(lambda: posted_events(kmock, "Suspended"), what="Suspended event")
    async with kmock.patch(url, json={"spec": {"suspend": False}}):
        pass
    await wait_for(lambda: rayjob_for(kmock, "curate"), what="curate RayJob again")
    await wait_for(lambda: experiment_status(kmock).get("phase") == "Running", what="Running")


async def test_hung_s3_endpoint_does_not_block_other_experiments(cluster, monkeypatch) -> None:
    """One Experiment's S3 endpoint accepts connections and never answers: the others get their
    RayJobs at once, the hung one says StoreUnavailable, and /healthz keeps answering."""
    kmock, _, operator = cluster
    await operator.stop()
    monkeypatch.setenv("LIMA_OPERATOR_STORE_TIMEOUT_S", "2")
    monkeypatch.setenv("LIMA_S3_RETRIES", "0")
    health_port = free_port()
    await operator.start(liveness=f"http://127.0.0.1:{health_port}/healthz")
    with HungEndpoint() as hung:
        stuck = example("stuck")
        stuck["spec"]["storage"]["endpoint"] = f"127.0.0.1:{hung.port}"
        await create(kmock, stuck)
        await wait_for(lambda: hung.connections, what="the hung endpoint to be called")
        started = time.monotonic()
        for name in ("exp-a", "exp-b", "exp-c"):
            await create(kmock, example(name))
        for name in ("exp-a", "exp-b", "exp-c"):
            await wait_for(lambda name=name: rayjob_of(kmock, name), what=f"{name} RayJob")
        waited = time.monotonic() - started
        health = await asyncio.wait_for(asyncio.to_thread(get, health_port), 5)
        status = await wait_for(
            lambda: (
                experiment_status(kmock, "stuck").get("phase") and experiment_status(kmock, "stuck")
            ),
            what="stuck status",
        )
    assert waited < 20, waited  # not one 2 s timeout per Experiment, let alone 30 s reads
    assert health == 200
    assert status["phase"] == "Pending" and progressing(status)["reason"] == "StoreUnavailable"
    assert f"127.0.0.1:{hung.port}" in progressing(status)["message"]
    assert rayjob_of(kmock, "stuck") is None


def rayjob_of(kmock, experiment: str) -> dict | None:
    jobs = [
        j
        for j in objects(kmock, RAYJOBS).values()
        if j["metadata"]["labels"]["lima-run.io/experiment"] == experiment
    ]
    return jobs[0] if jobs else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return response.status


class HungEndpoint:
    """A TCP server that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(conn)

    def __enter__(self) -> HungEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.close()
        for conn in self.connections:
            conn.close()


async def test_leader_election_one_active_replica_and_failover(kmock) -> None:
    """Two electors on one Lease (kmock): one leads; when it stops renewing, the other takes
    over after the lease duration; a write racing on a stale resourceVersion loses."""
    import kopf
    from lima_operator.kube import KubeClient
    from lima_operator.leader import LeaderElector
    from operator_harness import declare

    declare(kmock)
    info = kopf.ConnectionInfo(server=str(kmock.url), scheme="Bearer", token="t")
    client = KubeClient(info)
    try:
        first = LeaderElector(lambda: client, NS, "lima-op", "pod-a", duration_s=1.0)
        second = LeaderElector(lambda: client, NS, "lima-op", "pod-b", duration_s=1.0)
        assert await first.try_acquire_or_renew() is True
        assert await second.try_acquire_or_renew() is False
        assert await first.try_acquire_or_renew() is True  # renews
        assert await second.try_acquire_or_renew() is False
        await asyncio.sleep(1.3)  # pod-a stops renewing (died)
        assert await second.try_acquire_or_renew() is True
        lease = objects(kmock, LEASES)["lima-op"]
        assert lease["spec"]["holderIdentity"] == "pod-b"
        assert lease["spec"]["leaseTransitions"] == 1
        first._seen = None
        assert await first.try_acquire_or_renew() is False  # pod-a is back: it stands by
    finally:
        await client.close()


async def test_a_standby_replica_reconciles_only_once_it_holds_the_lease(
    cluster, monkeypatch
) -> None:
    """With leader election, an operator whose Lease another replica holds creates nothing;
    when that replica stops renewing, this one takes the Lease and reconciles what it saw."""
    kmock, _, operator = cluster
    await operator.stop()
    kmock.objects[LEASES, NS, "lima-run-operator"] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "lima-run-operator", "namespace": NS, "resourceVersion": "1"},
        "spec": {
            "holderIdentity": "other-replica",
            "leaseDurationSeconds": 3,
            "renewTime": "2026-11-30T00:00:00.000000Z",
        },
    }
    for name, value in {
        "LIMA_OPERATOR_LEADER_ELECTION": "true",
        "LIMA_OPERATOR_LEASE_DURATION_S": "3",
        "LIMA_OPERATOR_IDENTITY": "this-replica",
    }.items():
        monkeypatch.setenv(name, value)
    await operator.start()
    await create(kmock, example())
    await asyncio.sleep(2)  # within the other replica's lease: a standby only watches
    assert objects(kmock, RAYJOBS) == {} and not experiment_status(kmock)
    await wait_for(lambda: rayjob_for(kmock, "curate"), what="RayJob after the takeover")
    lease = objects(kmock, LEASES)["lima-run-operator"]
    assert lease["spec"]["holderIdentity"] == "this-replica"


def test_the_operator_registers_no_handler_that_needs_a_diff() -> None:
    """handlers.NoDiffBase skips kopf's per-event diff: only valid while nothing reads one."""
    import lima_operator.handlers  # noqa: F401  (registers the handlers)

    registry = kopf.get_default_registry()
    assert registry._changing.get_all_handlers() == []  # create/update/delete/resume
    assert registry._spawning.get_all_handlers() == []  # daemons and timers
    assert len(registry._watching.get_all_handlers()) == 2  # Experiments and RayJobs


def test_the_operator_process_keeps_start_up_out_of_garbage_collection() -> None:
    """`tune_gc` (the operator's start-up, LIMA_OPERATOR_GC_TUNING, default on): start-up's
    objects frozen out of collections, collections rarer; run in a process of its own, since
    it is process-wide (the in-process operator of these tests turns it off)."""
    import subprocess
    import sys

    from lima_operator.config import OperatorConfig

    assert OperatorConfig().gc_tuning is True
    probe = (
        "import gc, lima_operator.handlers as h\n"
        "assert gc.get_freeze_count() == 0\n"
        "h.tune_gc()\n"
        "assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()\n"
        "assert gc.get_threshold() == h.GC_THRESHOLD\n"
    )
    command = [sys.executable, "-c", probe]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
