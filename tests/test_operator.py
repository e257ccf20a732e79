"""The operator, in-process against kmock: stages, cache hits, failures, restarts, deletion."""

from __future__ import annotations

import copy

import pytest
from operator_harness import (
    EXPERIMENTS,
    NS,
    RAYJOBS,
    Operator,
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

pytestmark = pytest.mark.timeout(120)
POOLS = "cpu: {cpusPerWorker: 4, memoryPerWorker: 16Gi, minWorkers: 0, maxWorkers: 4}\n"


@pytest.fixture
async def cluster(kmock, settings, monkeypatch):
    from operator_harness import declare

    declare(kmock)
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


async def test_cache_hit_then_each_stage_in_order(cluster) -> None:
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
    assert spec["entrypoint"].startswith("lima stage train --experiment file://")
    workers = spec["rayClusterSpec"]["workerGroupSpecs"][0]
    assert workers["maxReplicas"] == 2  # spec.resources.train.workers of the example
    status = await wait_for(
        lambda: experiment_status(kmock).get("phase") == "Running" and experiment_status(kmock)
    )
    assert status["stages"][0] == {**status["stages"][0], "name": "curate", "phase": "Cached"}
    assert status["currentStage"] == "train" and status["stagesTotal"] == 6

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
    assert all(s["artifactUri"] for s in status["stages"])
    assert len(objects(kmock, RAYJOBS)) == 5
    assert_declared_in_crd(status)


def select_and_judge_results():
    """What the select and judge stages return, built by their own code from verdicts."""
    from lima.judging import win_tie_loss
    from lima.judging.types import Verdict
    from lima.results import SelectResult
    from lima.stages.judge import headline
    from lima.stages.select import choose

    rows = [
        {"epoch": 2, "score": 0.5, "reference": True},
        {"epoch": 3, "score": 0.75, "reference": False},
    ]
    best = choose(rows)
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
        headline=headline({"test": judged_set}, "lima", ["base"]),
    )
    return selected, judged


def assert_declared_in_crd(status: dict) -> None:
    """The API server prunes undeclared status fields: everything written must be declared."""
    from lima.k8s.crd import status_schema

    schema = status_schema()["properties"]
    assert set(status) - {"kopf"} <= set(schema), set(status) - set(schema)
    stage_fields = set(schema["stages"]["items"]["properties"])
    for stage in status["stages"]:
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
    document["spec"]["resources"]["train"] = {"workers": 8, "pool": "cpu"}
    document["spec"]["resources"]["curate"] = {"pool": "a100"}
    await create(kmock, document)
    status = await wait_for(
        lambda: experiment_status(kmock).get("phase") == "Invalid" and experiment_status(kmock),
        what="Invalid",
    )
    message = next(c for c in status["conditions"] if c["type"] == "Failed")["message"]
    assert "spec.resources.train.workers: must be <= 4" in message
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
