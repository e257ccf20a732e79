"""A sweep on the operator (kmock): variants under `parallelism`, one RayJob per shared stage
key, per-variant status, and the comparison RayJob at the end."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_admission import AdmittingEmulator
from lima_operator.artifacts import spec_digest
from operator_harness import (
    RAYJOBS,
    carried_spec,
    example,
    experiment_status,
    objects,
    publish,
    set_rayjob_status,
    wait_for,
)
from test_operator import assert_declared_in_crd, cluster, create  # noqa: F401  (fixture)

from lima import dag
from lima.report.compare import INPUTS, STAGE, compare_key
from lima.spec.load import parse_experiment
from lima.store import open_store
from lima.sweep import variant_experiment

pytestmark = [pytest.mark.timeout(180), pytest.mark.kmock(cls=AdmittingEmulator)]
NAME = "sw"


def _sweep_document() -> dict:
    document = example(NAME)
    document["spec"]["sweep"] = {
        "parallelism": 1,
        "variants": [{"name": "a"}, {"name": "b", "patch": {"train": {"lr": 5e-4}}}],
    }
    return document


def _children(document: dict) -> dict:
    experiment = parse_experiment({**document, "metadata": {"name": NAME}})
    return {
        v.name: variant_experiment(experiment, v, name=NAME) for v in experiment.spec.sweep.variants
    }


def _job_of(kmock, settings, child, stage: str) -> dict | None:
    """The RayJob of `child`'s `stage` (by the stage key it labels), if any yet."""
    key = next(
        p.key for p in dag.plan(child, open_store(settings, child.spec.storage)) if p.name == stage
    )
    return next(
        (j for j in _jobs(kmock, stage) if j["metadata"]["labels"]["lima-run.io/key"] == key[:63]),
        None,
    )


def _jobs(kmock, stage: str) -> list[dict]:
    return [
        j
        for j in objects(kmock, RAYJOBS).values()
        if j["metadata"]["labels"]["lima-run.io/stage"] == stage
    ]


async def _finish(kmock, settings, child, stage: str) -> None:
    """Play KubeRay for the RayJob of `child`'s `stage`: run it, publish, succeed."""
    job = await wait_for(lambda: _job_of(kmock, settings, child, stage), what=f"RayJob of {stage}")
    name = job["metadata"]["name"]
    await set_rayjob_status(kmock, name, jobDeploymentStatus="Running", jobStatus="RUNNING")
    publish(settings, child, stage)
    await set_rayjob_status(kmock, name, jobDeploymentStatus="Complete", jobStatus="SUCCEEDED")


async def test_sweep_variants_share_stages_honour_parallelism_and_compare(
    cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    kmock, settings, _ = cluster
    document = _sweep_document()
    children = _children(document)
    await create(kmock, document)

    await wait_for(lambda: _jobs(kmock, "curate"), what="curate RayJob")
    status = await wait_for(
        lambda: (
            len(experiment_status(kmock, NAME).get("variants", [])) == 2
            and experiment_status(kmock, NAME)
        ),
        what="variant rows",
    )
    a, b = status["variants"]
    assert a["phase"] == "Running" and b["phase"] == "Pending"
    assert "parallelism" in b["message"] and status["variantProgress"] == "0/2"
    assert_declared_in_crd(status)

    for stage in dag.NAMES:
        await _finish(kmock, settings, children["a"], stage)
    # Variant b starts once a is done (parallelism 1); its curation is a's (same key): no RayJob.
    await wait_for(lambda: len(_jobs(kmock, "train")) == 2, what="variant b's train RayJob")
    assert len(_jobs(kmock, "curate")) == 1
    status = await wait_for(
        lambda: (
            [v["phase"] for v in experiment_status(kmock, NAME)["variants"]]
            == ["Succeeded", "Running"]
            and experiment_status(kmock, NAME)
        ),
        what="a Succeeded, b Running",
    )
    assert status["variants"][1]["stages"][0]["phase"] == "Cached"
    # Each variant's RayJobs run that variant's own spec (its patch applied), named by digest.
    for child in children.values():
        job = _job_of(kmock, settings, child, "train")
        assert spec_digest(carried_spec(job, tmp_path)) == spec_digest(child)
        assert job["metadata"]["annotations"]["lima-run.io/spec-digest"] == spec_digest(child)
    ran = carried_spec(_job_of(kmock, settings, children["b"], "train"), tmp_path)
    assert ran.spec.train.lr == 5e-4 != children["a"].spec.train.lr
    for stage in dag.NAMES[1:]:
        await _finish(kmock, settings, children["b"], stage)

    job = await wait_for(lambda: _jobs(kmock, STAGE) and _jobs(kmock, STAGE)[0], what="compare")
    assert job["spec"]["entrypoint"].startswith(f"lima stage {STAGE} --experiment /")
    sweep = parse_experiment({**document, "metadata": {"name": NAME}})
    assert spec_digest(carried_spec(job, tmp_path)) == spec_digest(sweep)  # the whole sweep
    store = open_store(settings, children["a"].spec.storage)
    inputs = {}
    for variant, child in children.items():
        planned = {p.name: p.manifest for p in dag.plan(child, store)}
        inputs.update({(variant, stage): planned[stage] for stage in INPUTS})
    key, config = compare_key(sweep, inputs)
    assert job["metadata"]["labels"]["lima-run.io/key"] == key[:63]
    folder = tmp_path / "compare"
    folder.mkdir()
    (folder / "compare.html").write_text("<html></html>")
    name = job["metadata"]["name"]
    await set_rayjob_status(kmock, name, jobDeploymentStatus="Running", jobStatus="RUNNING")
    store.publish(STAGE, key, folder, code_version="1", config=config, inputs=[], started_at="x")
    await set_rayjob_status(kmock, name, jobDeploymentStatus="Complete", jobStatus="SUCCEEDED")
    status = await wait_for(
        lambda: (
            experiment_status(kmock, NAME).get("phase") == "Succeeded"
            and experiment_status(kmock, NAME)
        ),
        what="sweep Succeeded",
    )
    assert status["variantProgress"] == "2/2"
    assert status["stagesDone"] == status["stagesTotal"] == 2 * len(dag.NAMES) + 1
    assert_declared_in_crd(status)
