"""The curate stage end to end on Ray Data: outputs, rules, splits, determinism, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lima.curate.dedup import shingles
from lima.curate.rules import first_person, has_bare_url, refers_to_other_answers
from lima.curate.run import curate
from lima.curate.text import normalise
from lima.errors import SourceError
from lima.spec import Experiment
from lima.spec.data import DataSpec
from tests.conftest import FIXTURES

F = FIXTURES / "curate"


def fixture_spec(seed: int = 0, **overrides) -> DataSpec:
    data = {
        "sources": [
            {
                "name": "se-stem",
                "kind": "stackexchange",
                "uri": f"{F}/stackexchange/*.xml",
                "group": "stem",
                "quota": 6,
            },
            {
                "name": "se-other",
                "kind": "stackexchange",
                "uri": f"{F}/stackexchange/*.xml",
                "group": "other",
                "quota": 2,
            },
            {"name": "wikihow", "kind": "wikihow", "uri": f"{F}/wikihow/*.csv", "quota": 4},
            {"name": "wp", "kind": "writingprompts", "uri": f"{F}/writingprompts/*", "quota": 4},
            {
                "name": "ni",
                "kind": "natural_instructions",
                "uri": f"{F}/natural_instructions/*.json",
                "quota": 2,
            },
            {"name": "authored", "kind": "authored", "uri": f"{F}/authored/*.jsonl", "quota": 2},
            {"name": "empty", "kind": "authored", "uri": f"{F}/empty/*.jsonl", "quota": 0},
        ],
        "filters": {"max_field_chars": 50_000, "natural_instructions": {"tasks": 2}},
        "splits": {"dev": 2, "test": 3},
        "seed": seed,
    }
    data.update(overrides)
    return DataSpec.model_validate(data)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def curated(ray_local, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("curated")
    curate(fixture_spec(), out, workers=2)
    return out


def test_outputs_quotas_and_stats(curated: Path):
    assert {p.name for p in curated.iterdir()} >= {
        "train.jsonl",
        "dev.jsonl",
        "test.jsonl",
        "stats.json",
        "rejected.jsonl",
    }
    stats = json.loads((curated / "stats.json").read_text())
    assert stats["shortfalls"] == []
    train = lines(curated / "train.jsonl")
    assert len(train) == stats["totals"]["train"] == 20
    assert {s: stats["mix"][s]["selected"] for s in stats["mix"]} == {
        "se-stem": 6,
        "se-other": 2,
        "wikihow": 4,
        "wp": 4,
        "ni": 2,
        "authored": 2,
        "empty": 0,
    }
    for item in train:
        assert set(item) >= {"id", "conversations", "source", "provenance", "tags"}
        assert item["provenance"]["file"] and item["provenance"]["row"]
    se = stats["sources"]["se-stem"]
    assert se["read"] > 0 and se["dropped"]["first_person"] == 1
    assert sum(se["chars_histogram"].values()) == 6 and sum(se["tokens_histogram"].values()) == 6
    assert stats["totals"]["tokens"] <= stats["totals"]["token_budget"]


def test_rejected_rows_name_rule_file_and_row(curated: Path):
    rejected = lines(curated / "rejected.jsonl")
    assert all(r["rule"] and r["file"] and r["row"] for r in rejected)
    by_rule = {r["rule"] for r in rejected}
    assert {
        "malformed_xml",
        "invalid_utf8",
        "field_too_large",
        "json_error",
        "wrong_schema",
        "wrong_column_count",
        "unpaired_line",
        "empty_file",
        "not_selected",
    } <= by_rule
    empty = [r for r in rejected if r["rule"] == "empty_file"]
    assert empty[0]["file"].endswith("empty.jsonl")


def test_kept_stackexchange_answers_obey_rules(curated: Path):
    rows = [r for name in ("train", "dev", "test") for r in lines(curated / f"{name}.jsonl")]
    se = [r for r in rows if r["source"].startswith("se-")]
    assert len(se) >= 8
    for row in se:
        answer = row["conversations"][1]
        assert 1200 <= len(answer) <= 4096 and row["meta"]["score"] >= 10
        assert not first_person(answer) and not refers_to_other_answers(answer)
        assert not has_bare_url(answer) and "](" not in answer
    assert any("```" in r["conversations"][1] for r in se)


def _jaccard(a: str, b: str) -> float:
    x, y = set(shingles(a, 3)), set(shingles(b, 3))
    return len(x & y) / max(1, len(x | y))


def test_splits_disjoint_and_decontaminated(curated: Path):
    train, dev, test = (lines(curated / f"{n}.jsonl") for n in ("train", "dev", "test"))
    assert len(dev) == 2 and len(test) == 3
    ids = [r["id"] for r in train + dev + test]
    assert len(ids) == len(set(ids))
    held = [r["conversations"][0] for r in dev + test]
    assert all(r["reference"] == r["conversations"][1] for r in dev + test)
    for row in train:
        for prompt in held:
            assert normalise(row["conversations"][0]) != normalise(prompt)
            assert _jaccard(row["conversations"][0], prompt) < 0.7


def test_same_seed_same_dataset(curated: Path, tmp_path: Path):
    again = tmp_path / "again"
    curate(fixture_spec(), again, workers=1)
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "stats.json", "rejected.jsonl"):
        assert (again / name).read_bytes() == (curated / name).read_bytes(), name


def test_other_seed_and_shortfalls(ray_local, tmp_path: Path):
    spec = fixture_spec(seed=7, selection={"method": "random", "token_budget": 3000})
    stats = curate(spec, tmp_path, workers=1)
    assert any(s.startswith("token budget") for s in stats["shortfalls"])
    assert stats["totals"]["tokens"] <= 3000
    short = {s.split(":")[0] for s in stats["shortfalls"]}
    assert short & {"se-stem", "wikihow", "wp"}


def test_missing_source_fails_before_work(ray_local, tmp_path: Path):
    spec = fixture_spec()
    spec.sources[2].uri = str(tmp_path / "nowhere" / "*.csv")
    with pytest.raises(SourceError, match="nowhere"):
        curate(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_stage_through_runner(ray_local, settings):
    from lima.dag import get
    from lima.runner import run_experiment

    curate_stage = get("curate")
    experiment = Experiment.model_validate(
        {
            "apiVersion": "lima-run.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": "curate-test"},
            "spec": {
                "data": fixture_spec().model_dump(mode="json"),
                "judge": {"selection_prompts": 2},
            },
        }
    )
    results = run_experiment(experiment, settings, stages=[curate_stage])
    assert [r.status for r in results] == ["done"], results[0].message
    assert results[0].summary["train"] == 20
    # The stage's typed result carries the removals per held-out set (none in this fixture).
    assert results[0].summary["contamination"] == {"dev": 0, "test": 0}
    again = run_experiment(experiment, settings, stages=[curate_stage])
    assert again[0].status == "cached" and again[0].key == results[0].key


def test_source_on_s3(ray_local, s3_settings, tmp_path: Path):
    from lima.store import s3_backend

    backend = s3_backend(s3_settings, "datasets")
    backend.ensure_bucket()
    backend.put_file("authored/a.jsonl", F / "authored" / "mixed.jsonl")
    spec = DataSpec.model_validate(
        {
            "sources": [
                {
                    "name": "authored",
                    "kind": "authored",
                    "uri": "s3://datasets/authored/*.jsonl",
                    "quota": 2,
                }
            ],
            "splits": {"dev": 0, "test": 1},
            "selection": {"method": "random"},
        }
    )
    stats = curate(spec, tmp_path / "out", settings=s3_settings, scratch=tmp_path / "scratch")
    assert stats["totals"]["train"] == 2 and stats["totals"]["test"] == 1
    rejected = lines(tmp_path / "out" / "rejected.jsonl")
    assert rejected and all(r["file"] == "s3://datasets/authored/a.jsonl" for r in rejected)
