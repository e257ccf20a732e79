"""Sweeps (`spec.sweep`): merge patches, validation, shared artifacts, the comparison report."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from lima import dag
from lima.errors import SpecError
from lima.spec.load import load_experiment, parse_experiment
from lima.spec.sweep import merge_patch

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["eval_fixtures"]  # the tuned_model / base_model fixtures


@pytest.mark.parametrize(
    ("target", "patch", "merged"),
    [  # RFC 7386, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ({"a": "foo"}, "bar", "bar"),
    ],
)
def test_merge_patch_follows_rfc_7386(target: Any, patch: Any, merged: Any) -> None:
    before = copy.deepcopy(target)
    assert merge_patch(target, patch) == merged
    assert target == before  # the spec it patches is not modified


def _demo(**sweep: Any) -> dict[str, Any]:
    document = yaml.safe_load((REPO / "examples/experiment.yaml").read_text())
    document["spec"]["sweep"] = sweep
    return document


def _problems(document: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_experiment(document)
    return caught.value.problems


def test_a_bad_variant_is_refused_with_its_path() -> None:
    problems = _problems(
        _demo(variants=[{"name": "a"}, {"name": "b", "patch": {"train": {"lr": -1, "lrr": 2}}}])
    )
    assert "spec.sweep.variants[1].patch.train.lr: Input should be greater than 0" in problems
    assert any(p.startswith("spec.sweep.variants[1].patch.train.lrr:") for p in problems)


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ({"variants": [{"name": "a"}]}, "at least 2"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "unique (repeated: a)"),
        ({"variants": [{"name": "a"}, {"name": "b"}], "baseline": "c"}, "baseline 'c'"),
        ({"variants": [{"name": "a"}, {"name": "b", "patch": {"judge": {}}}]}, "may not change"),
        ({"variants": [{"name": "a"}, {"name": "B!"}]}, "DNS-1035 label"),
    ],
)
def test_sweep_rules(sweep: dict[str, Any], expected: str) -> None:
    problems = _problems(_demo(**sweep))
    assert any(expected in p and p.startswith("spec.sweep") for p in problems), problems


def test_variants_that_share_curation_share_its_key(tmp_path: Path) -> None:
    """A sweep over training settings curates once: the variants' curate keys are equal."""
    from lima.settings import Settings
    from lima.store import open_store
    from lima.sweep import variants

    experiment = load_experiment(REPO / "examples/ablation-quantity.yaml")
    store = open_store(Settings(work_dir=tmp_path), experiment.spec.storage)
    plans = {v.name: dag.plan(child, store) for v, child in variants(experiment)}
    curate_keys = {name: plan[0].key for name, plan in plans.items()}
    assert len(set(curate_keys.values())) == 1  # train.max_examples: one curated pool
    subsets = [
        dag.train_config(child)["train"]["max_examples"] for _, child in variants(experiment)
    ]
    assert subsets == [8, 16, 32]  # ...and a train key per subset

    from lima.spec.paths import resolve_spec_paths

    document = _demo(
        variants=[
            {"name": "slow", "patch": {"train": {"lr": 1e-3}}},
            {"name": "fast", "patch": {"train": {"lr": 3e-3}}},
        ]
    )
    lr = resolve_spec_paths(parse_experiment(document), REPO / "examples")
    plans = [dag.plan(child, store) for _, child in variants(lr)]
    assert plans[0][0].key == plans[1][0].key  # same data: one curated artifact
    assert [c.metadata.name for _, c in variants(lr)] == ["demo-slow", "demo-fast"]


@pytest.mark.parametrize("name", ["ablation-diversity.yaml", "ablation-quantity.yaml"])
def test_the_example_sweeps_validate(name: str) -> None:
    experiment = load_experiment(REPO / "examples" / name)
    assert experiment.spec.sweep is not None and len(experiment.spec.sweep.variants) >= 3


def test_max_examples_subset_is_seeded_random_and_nested() -> None:
    from lima.train.data import subset

    pool = [{"id": i} for i in range(100)]
    small, large = subset(pool, 8, 3), subset(pool, 16, 3)
    assert len(small) == 8 and len(large) == 16
    assert subset(pool, 8, 3) == small  # deterministic
    assert {r["id"] for r in small} <= {r["id"] for r in large}  # nested for one seed
    assert [r["id"] for r in small] != list(range(8))  # drawn from the whole pool, not the head
    assert max(r["id"] for r in large) >= 16
    assert small == sorted(small, key=lambda r: r["id"])  # kept in the pool's order
    assert subset(pool, 8, 4) != small  # the seed draws another sample
    assert subset(pool, None, 3) == pool and subset(pool, 500, 3) == pool


def test_max_examples_enters_the_train_key_only_when_set() -> None:
    from lima.spec.paths import resolve_spec_paths

    document = _demo(variants=[{"name": "a"}, {"name": "b"}])
    del document["spec"]["sweep"]
    unset = resolve_spec_paths(parse_experiment(document), REPO / "examples")
    assert "max_examples" not in dag.train_config(unset)["train"]  # old train keys stay valid
    document["spec"]["train"]["max_examples"] = 8
    subset = resolve_spec_paths(parse_experiment(document), REPO / "examples")
    assert dag.train_config(subset)["train"]["max_examples"] == 8
    assert dag.curate_config(subset) == dag.curate_config(unset)


def test_the_comparison_shows_the_trained_subset(settings, tmp_path: Path) -> None:
    """The comparison reads train's typed result (lima.results.TrainResult) from its manifest."""
    from lima.report.compare import _data_stats
    from lima.results import TrainResult
    from lima.store import ArtifactStore, FileBackend

    store = ArtifactStore(FileBackend(settings.artifacts_dir), "lima")
    train = dag.get("train")

    def trained(key: str, used: int, pool: int):
        """A train artifact published with the result the train stage returns."""
        result = TrainResult(
            epochs=1,
            non_padding_fraction=0.9,
            truncated=0,
            train_rows=used,
            pool_rows=pool,
            models=["epoch-1"],
        )
        folder = tmp_path / key
        folder.mkdir()
        (folder / "model.txt").write_text(key)
        return store.publish(
            "train",
            key,
            folder,
            code_version=train.version,
            config={"key": key},
            inputs=[],
            started_at="2026-11-30T00:00:00Z",
            summary=train.check_result(result),
        )

    totals = {"train": 57, "tokens": 40332}
    (tmp_path / "stats.json").write_text(json.dumps({"totals": totals, "mix": {}}))
    pool = _data_stats(tmp_path, trained("all", 57, 57))
    assert pool["train"] == 57 and pool["pool"] is None
    part = _data_stats(tmp_path, trained("part", 8, 57))
    assert part["train"] == 8 and part["pool"] == 57 and part["tokens"] == 40332
    assert _data_stats(tmp_path, None)["train"] == 57  # no train artifact at hand
    # A summary that is no TrainResult (an older layout, or hand-made) is not trusted, even when
    # it carries numbers under the same names: curate's counts stand.
    older = store.publish(
        "train",
        "old",
        tmp_path / "all",
        code_version="0",
        config={},
        inputs=[],
        started_at="2026-01-01T00:00:00Z",
        summary={"train_rows": 8, "pool_rows": 57},
    )
    assert _data_stats(tmp_path, older)["train"] == 57


@pytest.mark.slow  # real curate + two 1-epoch Ray Train runs of the tiny preset: ~50 s here
def test_a_sweep_over_max_examples_curates_once_and_trains_on_subsets(
    settings, ray_local, caplog: pytest.LogCaptureFixture
) -> None:
    """Real curate and train stages (tiny preset, 1 epoch) for two variants of one pool."""
    import logging

    from lima.runner import run_experiment
    from lima.spec.paths import resolve_spec_paths
    from lima.store import open_store
    from lima.sweep import variants

    document = yaml.safe_load((REPO / "examples/ablation-quantity.yaml").read_text())
    spec = document["spec"]
    spec["data"]["sources"][0]["quota"] = 12
    spec["train"].update(epochs=1, eligible_epochs=[1], global_batch_size=2)
    spec["resources"]["train"] = {"workers": 1, "cpus": 1, "memory": "4Gi"}
    spec["sweep"]["baseline"] = "n4"
    spec["sweep"]["variants"] = [
        {"name": "n4", "patch": {"train": {"max_examples": 4}}},
        {"name": "all", "patch": {"train": {"max_examples": 500}}},  # more than the pool
    ]
    sweep = resolve_spec_paths(parse_experiment(document), REPO / "examples")
    store = open_store(settings, sweep.spec.storage)
    stages = [dag.get("curate"), dag.get("train")]
    runs = {}
    with caplog.at_level(logging.WARNING, logger="lima.train"):
        for variant, child in variants(sweep):
            runs[variant.name] = {
                r.stage: r for r in run_experiment(child, settings, stages=stages, store=store)
            }
    assert runs["n4"]["curate"].status == "done"
    assert runs["all"]["curate"].status == "cached"  # one curated pool, one curate run
    assert runs["n4"]["curate"].key == runs["all"]["curate"].key
    assert runs["n4"]["train"].status == runs["all"]["train"].status == "done"
    assert runs["n4"]["train"].key != runs["all"]["train"].key
    from lima.results import TrainResult

    trained = {name: TrainResult.model_validate(r["train"].summary) for name, r in runs.items()}
    assert trained["n4"].train_rows == 4 and trained["n4"].pool_rows == 12
    assert trained["all"].train_rows == trained["all"].pool_rows == 12
    assert any(
        "max_examples is 500" in r.getMessage() and "holds 12" in r.getMessage()
        for r in caplog.records
    ), caplog.text


@pytest.mark.slow  # three variants through the real select/generate/judge/report: ~1-3 min
def test_three_variant_sweep_shares_artifacts_and_compares(
    settings, ray_local, tmp_path: Path, tuned_model: Path, base_model: Path
) -> None:
    from test_stages_eval import _curate, _train_stage, experiment

    from lima.dag import Stage, get
    from lima.spec import Experiment
    from lima.store import open_store
    from lima.sweep import run_sweep

    document = experiment().model_dump(mode="json", exclude_unset=True)
    document["spec"]["sweep"] = {
        "baseline": "t07",
        "variants": [
            {"name": "t07", "description": "the paper's temperature"},
            {"name": "t10", "patch": {"generate": {"temperature": 1.0}}},
            {"name": "greedy", "patch": {"generate": {"temperature": 0.05}}},
        ],
    }
    sweep = Experiment.model_validate(document)
    stages = [
        Stage("curate", "fixture", (), lambda e: {"fixture": 1}, _curate),
        _train_stage({1: base_model, 2: tuned_model, 3: tuned_model}),
        *(get(n) for n in ("select", "generate", "judge", "report")),
    ]
    result = run_sweep(sweep, settings, stages=stages)
    assert result.ok, result.summary()
    statuses = {v.variant.name: {s.stage: s.status for s in v.stages} for v in result.variants}
    # Curation and training do not depend on decoding: computed once, then cache hits.
    assert statuses["t07"]["curate"] == "done" and statuses["t07"]["train"] == "done"
    for name in ("t10", "greedy"):
        assert statuses[name]["curate"] == statuses[name]["train"] == "cached"
        assert statuses[name]["generate"] == "done"  # decoding changed: new answers

    store = open_store(settings, sweep.spec.storage)
    comparison = json.loads(store.read_object(result.comparison, "comparison.json"))
    rows = {row["variant"]: row for row in comparison["rows"]}
    assert list(rows) == ["t07", "t10", "greedy"] and comparison["baseline"] == "t07"
    for name, row in rows.items():
        likert = row["likert"]
        assert likert["n"] > 0 and likert["ci"][0] <= likert["mean"] <= likert["ci"][1], name
    assert rows["t07"]["pairwise"] is None
    for name in ("t10", "greedy"):
        pairwise = rows[name]["pairwise"]
        assert pairwise["n"] > 0
        assert abs(pairwise["win"] + pairwise["tie"] + pairwise["loss"] - 1) < 1e-9
    html = store.read_object(result.comparison, "compare.html").decode()
    assert html.count("<tr") == 1 + 3 + 1 + 3  # two tables: header + one row per variant
    assert "comparison.png" in html
    from lima.report import locate

    assert locate(store, "evaltest").endswith("compare.html")  # `lima report SWEEP`
    again = run_sweep(sweep, settings, stages=stages)
    assert again.comparison.key == result.comparison.key  # unchanged sweep: a cache hit
    from lima.results import CompareResult

    assert CompareResult.model_validate(again.comparison.summary).variants == list(rows)
