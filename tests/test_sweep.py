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
    assert len(set(curate_keys.values())) == len(curate_keys)  # the data differs per variant

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
