"""`spec.sweep.parallelism` on the operator (kmock): with 3 variants and parallelism 2, two
variants run at once (each gets its own RayJobs), the third waits until one of them is done."""

from __future__ import annotations

import pytest
from fake_admission import AdmittingEmulator
from operator_harness import example, experiment_status, wait_for
from test_operator import cluster, create  # noqa: F401  (fixture)
from test_operator_sweep import _finish, _jobs

from lima import dag
from lima.spec.load import parse_experiment
from lima.store import open_store
from lima.sweep import variant_experiment

pytestmark = [pytest.mark.timeout(180), pytest.mark.kmock(cls=AdmittingEmulator)]
NAME = "par"
WAITING = "waiting for a free slot (spec.sweep.parallelism)"


def _document() -> dict:
    document = example(NAME)
    document["spec"]["sweep"] = {
        "parallelism": 2,
        "variants": [
            {"name": "a"},
            {"name": "b", "patch": {"train": {"lr": 5e-4}}},
            {"name": "c", "patch": {"train": {"lr": 8e-4}}},
        ],
    }
    return document


def _train_keys(kmock) -> set[str]:
    return {j["metadata"]["labels"]["lima-run.io/key"] for j in _jobs(kmock, "train")}


def _phases(kmock) -> list[str]:
    return [v["phase"] for v in experiment_status(kmock, NAME)["variants"]]


async def test_two_variants_run_at_once_and_the_third_waits_for_a_slot(
    cluster,  # noqa: F811
) -> None:
    kmock, settings, _ = cluster
    document = _document()
    sweep = parse_experiment({**document, "metadata": {"name": NAME}})
    children = {v.name: variant_experiment(sweep, v, name=NAME) for v in sweep.spec.sweep.variants}
    await create(kmock, document)

    status = await wait_for(
        lambda: (
            _phases(kmock) == ["Running", "Running", "Pending"] and experiment_status(kmock, NAME)
        ),
        what="a and b Running, c Pending",
    )
    assert status["variants"][2]["message"] == WAITING
    assert "message" not in status["variants"][0] and "message" not in status["variants"][1]
    assert status["variantProgress"] == "0/3"

    # The shared curation finishes: a and b both train at once; c has no RayJob yet.
    await _finish(kmock, settings, children["a"], "curate")
    store = open_store(settings, sweep.spec.storage)
    train_key = {  # known once the curation they share exists
        name: next(p.key for p in dag.plan(child, store) if p.name == "train")[:63]
        for name, child in children.items()
    }
    assert len(set(train_key.values())) == 3  # each variant trains a model of its own
    await wait_for(
        lambda: _train_keys(kmock) == {train_key["a"], train_key["b"]},
        what="the train RayJobs of a and b",
    )
    status = experiment_status(kmock, NAME)
    assert status["variants"][2]["phase"] == "Pending"
    assert status["variants"][2]["message"] == WAITING

    # a finishes: its slot goes to c, whose train RayJob appears (b is still training).
    for stage in dag.NAMES[1:]:
        await _finish(kmock, settings, children["a"], stage)
    await wait_for(lambda: _train_keys(kmock) == set(train_key.values()), what="c's train RayJob")
    status = await wait_for(
        lambda: (
            _phases(kmock) == ["Succeeded", "Running", "Running"] and experiment_status(kmock, NAME)
        ),
        what="a Succeeded, b and c Running",
    )
    assert status["variantProgress"] == "1/3"
    assert status["variants"][2]["stages"][0]["phase"] == "Cached"  # a's curation, shared
    assert len(_jobs(kmock, "curate")) == 1
