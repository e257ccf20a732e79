"""Decontamination and dedup traceability: planted contamination of every kind, recall sweeps.

The planted run goes through the real entry points (Experiment -> the curate stage's DataSpec ->
`curate` on Ray Data); the recall sweeps drive the Decontaminator and the Deduplicator directly
and judge them with an independent n-gram oracle written here.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path

import pytest

from lima.curate.decontam import Decontaminator, split_units
from lima.curate.dedup import Deduplicator, text_hash
from lima.curate.evalsets import effective_data
from lima.curate.minhash import signature
from lima.curate.records import Doc, Rejection, doc
from lima.curate.run import curate
from lima.curate.stats import Stats
from lima.curate.text import normalise
from lima.errors import StageError
from lima.spec import Experiment
from lima.spec.data import DataSpec, Decontamination

SYLLABLES = ["ka", "lo", "mi", "ve", "tor", "san", "pel", "dru", "fen", "gal", "hom", "jis"]
SYLLABLES += ["nur", "qua", "rex", "sil", "tam", "ulo", "wic", "yen", "zor", "bex"]


def vocabulary(seed: int, size: int = 4000) -> list[str]:
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


VOCAB = vocabulary(0)


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


# ── the independent oracle ───────────────────────────────────────────────────────────────


def grams(value: str, n: int) -> set[str]:
    tokens = normalise(value).split()
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def oracle_containment(part: str, whole: str, n: int = 8) -> float:
    a, b = grams(part, n), grams(whole, n)
    return len(a & b) / len(a)


def oracle_jaccard(x: str, y: str, n: int) -> float:
    a, b = grams(x, n), grams(y, n)
    return len(a & b) / len(a | b)


def substitute(rng: random.Random, value: str, k: int) -> str:
    tokens = value.split()
    for index in rng.sample(range(len(tokens)), k):
        tokens[index] = rng.choice(VOCAB) + "x"  # never equal to the word it replaces
    return " ".join(tokens)


# ── planted contamination, end to end ────────────────────────────────────────────────────


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


REPO = Path(__file__).resolve().parents[1]
MT_BENCH = REPO / "tests/fixtures/eval/mt_bench_question.jsonl"  # FastChat's, Apache-2.0
VICUNA = REPO / "examples/data/eval/vicuna_question.jsonl"  # the demo's copy, Apache-2.0


def planted(tmp: Path) -> dict:
    """Sources, evaluation files and what each planted row must collide with."""
    rng = random.Random(17)
    held = [{"prompt": text(rng, 14) + "?", "response": text(rng, 120)} for _ in range(5)]
    held.append({"prompt": text(rng, 6) + "?", "response": text(rng, 120)})  # a short prompt
    mt = [json.loads(line) for line in MT_BENCH.open()]
    q81 = next(q for q in mt if q["question_id"] == 81)["turns"][0]
    q101 = next(q for q in mt if q["question_id"] == 101)["turns"][0]
    vicuna_1 = "How can I improve my time management skills?"
    custom_answer = text(rng, 90)
    custom = [{"id": "c1", "prompt": text(rng, 12), "reference": custom_answer}]

    def conv(*turns: str) -> list[str]:
        return list(turns)

    distinct = [{"conversations": conv(text(rng, 12) + "?", text(rng, 100))} for _ in range(14)] + [
        {"conversations": conv(text(rng, 10), text(rng, 80), text(rng, 9), text(rng, 70))}
        for _ in range(3)
    ]
    near_misses = [
        # the first 6 words of a held-out prompt: no 8-gram in common
        {
            "conversations": conv(
                " ".join(held[0]["prompt"].split()[:6]) + " " + text(rng, 8), text(rng, 90)
            )
        },
        # half of a held-out answer (containment ~0.47, below 0.7)
        {
            "conversations": conv(
                text(rng, 12), " ".join(held[1]["response"].split()[:60]) + " " + text(rng, 60)
            )
        },
        # MT-Bench's topic in other words
        {
            "conversations": conv(
                "Write a travel blog about a trip to Hawaii and its culture", text(rng, 90)
            )
        },
    ]
    contaminated = {
        "later-turns": (
            {
                "conversations": conv(
                    text(rng, 10), text(rng, 60), held[0]["prompt"], held[0]["response"]
                )
            },
            "split",
        ),
        "prefix": (
            {"conversations": conv("Can anyone tell me: " + held[1]["prompt"], text(rng, 90))},
            "split",
        ),
        "answer-copy": (
            {
                "conversations": conv(
                    text(rng, 11) + "?",
                    substitute(rng, held[2]["response"], 3) + " " + text(rng, 60),
                )
            },
            "split",
        ),
        # A bare near-copy of a held-out answer is already a near-duplicate of the held-out row
        # (dedup runs before the split); the longer copy above needs the containment test.
        "answer-near-copy": (
            {"conversations": conv(text(rng, 11) + "?", substitute(rng, held[3]["response"], 2))},
            "dedup",
        ),
        "short-phrase": (
            {
                "conversations": conv(
                    text(rng, 9), text(rng, 30) + " " + held[5]["prompt"] + " " + text(rng, 30)
                )
            },
            "split",
        ),
        "mt-bench-81": ({"conversations": conv(q81, text(rng, 90))}, "mt-bench"),
        "mt-bench-101": (
            {
                "conversations": conv(
                    text(rng, 9), text(rng, 50), "Quick puzzle: " + q101 + " Thanks!", text(rng, 40)
                )
            },
            "mt-bench",
        ),
        "vicuna": ({"conversations": conv(vicuna_1, text(rng, 90))}, "vicuna"),
        "custom-answer": ({"conversations": conv(text(rng, 10), custom_answer)}, "custom"),
    }
    twin = {"conversations": conv("Twin question here?", text(rng, 80))}
    rows = list(distinct) + near_misses
    rows += [{"id": name, **row} for name, (row, _) in contaminated.items()]
    rows += [
        {"id": "b", **twin},  # kept: first line, although "a" sorts first as a string
        {"id": "a", "conversations": [t.upper() for t in twin["conversations"]]},
        {"id": "same", "conversations": conv(text(rng, 12), text(rng, 80))},
        {"id": "same", "conversations": conv(text(rng, 12), text(rng, 80))},
    ]
    keep = distinct + near_misses + [twin] + rows[-2:]
    data = tmp / "data"
    write_jsonl(data / "held.jsonl", held)
    write_jsonl(data / "train.jsonl", rows)
    write_jsonl(data / "custom.jsonl", custom)
    shutil.copy(MT_BENCH, data / "mt.jsonl")
    shutil.copy(VICUNA, data / "vicuna.jsonl")
    return {"data": data, "rows": rows, "keep": keep, "contaminated": contaminated, "held": held}


def planted_experiment(data: Path, train_rows: int) -> Experiment:
    spec = {
        "data": {
            "sources": [
                # quota 0 and exactly dev + test rows: every held-out prompt comes from here
                {"name": "held", "kind": "authored", "uri": str(data / "held.jsonl"), "quota": 0},
                {
                    "name": "train",
                    "kind": "authored",
                    "uri": str(data / "train.jsonl"),
                    "quota": train_rows,
                },
            ],
            "splits": {"dev": 2, "test": 4},
            "selection": {"method": "random"},
            "decontamination": {
                "extra_sets": [{"name": "custom", "uri": str(data / "custom.jsonl")}]
            },
        },
        "generate": {
            "prompt_sets": [
                {"name": "test", "uri": "curated:test"},
                {"name": "mt-bench", "uri": str(data / "mt.jsonl")},
                {"name": "vicuna", "uri": str(data / "vicuna.jsonl"), "limit": 8},
            ]
        },
        "judge": {"selection_prompts": 2},
    }
    return Experiment.model_validate(
        {
            "apiVersion": "lima-run.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": "decontam"},
            "spec": spec,
        }
    )


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def planted_run(ray_local, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("decontam")
    case = planted(tmp)
    experiment = planted_experiment(case["data"], len(case["rows"]))
    out = tmp / "out"
    curate(effective_data(experiment.spec), out, workers=2)
    return {**case, "out": out, "experiment": experiment}


def test_every_planted_item_removed_and_no_distinct_one(planted_run):
    out = planted_run["out"]
    train = lines(out / "train.jsonl")
    rejected = [r for r in lines(out / "rejected.jsonl") if r["source"] == "train"]
    removed = {
        r["row"]: r
        for r in rejected
        if r["rule"] == "contaminates_eval"
        or (r["rule"] == "near_duplicate" and r["collided_with"]["source"] == "held")
    }
    by_line = {str(i): row for i, row in enumerate(planted_run["rows"], start=1)}
    removed_ids = {by_line[row]["id"] for row in removed}
    assert removed_ids == set(planted_run["contaminated"])
    for row, record in removed.items():
        expected_set = planted_run["contaminated"][by_line[row]["id"]][1]
        hit = record["collided_with"]
        if expected_set == "dedup":
            assert record["rule"] == "near_duplicate" and record["similarity"]["value"] >= 0.7
            # The kept copy went to dev or test: the row names that split and its output id.
            held_out = {r["id"]: n for n in ("dev", "test") for r in lines(out / f"{n}.jsonl")}
            assert hit["split"] in {"dev", "test"} and held_out[hit["output_id"]] == hit["split"]
            continue
        if expected_set == "split":
            assert hit["split"] in {"dev", "test"} and hit["source"] == "held"
        else:
            assert hit["set"] == expected_set and hit["split"] == "eval"
        assert hit["id"] and record["similarity"]["value"] >= 0.7
    assert sorted(r["conversations"] for r in train) == sorted(
        r["conversations"] for r in planted_run["keep"]
    )
    mt = {
        r["collided_with"]["id"]
        for r in removed.values()
        if r["collided_with"].get("set") == "mt-bench"
    }
    assert mt == {"81", "101"}


def test_removals_name_collision_turn_and_measure(planted_run):
    rejected = lines(planted_run["out"] / "rejected.jsonl")
    removed = {r["excerpt"][:20]: r for r in rejected if r["rule"] == "contaminates_eval"}
    later = next(
        r
        for r in removed.values()
        if r["train_turn"] == 2
        and r["collided_with"]["kind"] == "prompt"
        and r["collided_with"]["split"] != "eval"
    )
    assert later["similarity"] == {"metric": "prompt_containment", "value": 1.0}
    answer = [
        r for r in rejected if r.get("similarity", {}).get("metric", "").startswith("answer_")
    ]
    assert {r["collided_with"]["set"] for r in answer} >= {"custom"}
    assert any(r["collided_with"]["split"] in {"dev", "test"} for r in answer)


def test_ids_line_order_and_unique(planted_run):
    out = planted_run["out"]
    train = lines(out / "train.jsonl")
    rows = planted_run["rows"]
    twin_line = str(next(i for i, r in enumerate(rows, 1) if r.get("id") == "b"))
    twin = next(r for r in train if r["conversations"][0] == "Twin question here?")
    assert twin["provenance"] == {
        "file": str(planted_run["data"] / "train.jsonl"),
        "row": twin_line,
        "id": "b",
    }
    dup = next(r for r in lines(out / "rejected.jsonl") if r["rule"] == "exact_duplicate")
    assert dup["collided_with"]["id"] == "b" and dup["collided_with"]["row"] == twin_line
    same = [r for r in train if r["provenance"].get("id") == "same"]
    assert sorted(r["id"] for r in same) == ["train-same", "train-same-2"]
    assert len({r["provenance"]["row"] for r in same}) == 2
    everything = [r["id"] for n in ("train", "dev", "test") for r in lines(out / f"{n}.jsonl")]
    assert len(everything) == len(set(everything))


def test_contamination_report_in_stats(planted_run):
    stats = json.loads((planted_run["out"] / "stats.json").read_text())
    report = stats["contamination"]
    sets = report["sets"]
    assert set(sets) == {"dev", "test", "mt-bench", "vicuna", "custom"}
    # MT-Bench q81 is also Vicuna's q77: that training item counts for both sets.
    assert sets["mt-bench"]["removed"] == 2 and sets["vicuna"]["removed"] == 2
    assert sets["custom"]["removed"] == 1
    # 4 by decontamination and the answer's near-copy removed by dedup, whose kept copy is held out
    assert sets["dev"]["removed"] + sets["test"]["removed"] == 5
    assert sets["dev"]["removed_as_duplicates"] + sets["test"]["removed_as_duplicates"] == 1
    assert report["duplicates_of_held_out"] == 1
    assert (
        sets["mt-bench"]["prompts"] == 160 and sets["vicuna"]["prompts"] == 80
    )  # all, not `limit`
    assert report["removed"] == 8 and report["thresholds"]["containment"] == 0.7
    closest = [pair for found in sets.values() for pair in found["closest_remaining"].values()]
    assert closest and all(pair["similarity"] < 0.7 for pair in closest)
    half = [
        found["closest_remaining"]["answer_containment"]
        for name, found in sets.items()
        if name in {"dev", "test"} and "answer_containment" in found["closest_remaining"]
    ]
    assert any(0.4 < pair["similarity"] < 0.55 for pair in half)  # the half-copied answer
    assert stats["sources"]["train"]["dropped"]["contaminates_eval"] == 8


def test_curate_key_covers_evaluation_sets(planted_run, tmp_path: Path):
    from lima.dag import curate_config

    experiment = planted_run["experiment"]
    base = curate_config(experiment)
    names = [s["name"] for s in base["data"]["decontamination"]["extra_sets"]]
    assert names == ["custom", "mt-bench", "vicuna"]
    changed = experiment.model_copy(deep=True)
    changed.spec.generate.prompt_sets = changed.spec.generate.prompt_sets[:2]
    assert curate_config(changed) != base
    edited = tmp_path / "mt.jsonl"
    edited.write_text((planted_run["data"] / "mt.jsonl").read_text().replace("Hawaii", "Oahu"))
    moved = experiment.model_copy(deep=True)
    moved.spec.generate.prompt_sets[1].uri = str(edited)
    assert (
        curate_config(moved)["eval_set_digests"]["mt-bench"] != base["eval_set_digests"]["mt-bench"]
    )


def test_missing_evaluation_set_fails_before_work(ray_local, tmp_path: Path):
    from lima.errors import SourceError

    data = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "p", "response": "r"}])
    spec = DataSpec.model_validate(
        {
            "sources": [{"name": "a", "kind": "authored", "uri": str(data), "quota": 1}],
            "decontamination": {
                "extra_sets": [{"name": "gone", "uri": str(tmp_path / "gone.jsonl")}]
            },
        }
    )
    with pytest.raises(SourceError, match=r"gone\.jsonl"):
        curate(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ── splits never starve train ────────────────────────────────────────────────────────────


def test_small_source_keeps_train_and_warns(ray_local, tmp_path: Path, caplog):
    rng = random.Random(3)
    data = write_jsonl(
        tmp_path / "a.jsonl",
        [{"prompt": text(rng, 10), "response": text(rng, 60)} for _ in range(4)],
    )
    spec = DataSpec.model_validate(
        {
            "sources": [{"name": "a", "kind": "authored", "uri": str(data), "quota": 3}],
            "splits": {"dev": 2, "test": 3},
            "selection": {"method": "random"},
        }
    )
    with caplog.at_level(logging.WARNING, logger="lima.curate"):
        stats = curate(spec, tmp_path / "out", workers=1)
    assert stats["totals"]["train"] == 3  # the quota is whole
    assert stats["totals"]["dev"] + stats["totals"]["test"] == 1  # only the one spare row
    short = [s for s in stats["shortfalls"] if s.startswith(("dev:", "test:"))]
    assert short and all("3 of them reserved" in s and "1 left over" in s for s in short)
    assert len(lines(tmp_path / "out" / "train.jsonl")) == 3
    logged = [r.getMessage() for r in caplog.records]
    assert all(any(s in m for m in logged) for s in stats["shortfalls"])


def test_no_training_example_fails_loudly(ray_local, tmp_path: Path):
    data = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "only", "response": "one"}])
    spec = DataSpec.model_validate(
        {
            "sources": [{"name": "a", "kind": "authored", "uri": str(data), "quota": 0}],
            "splits": {"dev": 0, "test": 1},
        }
    )
    with pytest.raises(StageError, match=r"no training example left .*1 to test"):
        curate(spec, tmp_path / "out", workers=1)


# ── recall sweeps against the oracle ─────────────────────────────────────────────────────

MARGIN = 0.0
"""Decisions are taken on exact measures, so nothing below the threshold may be removed."""


def _sweep_docs(seed: int, pairs: int, build) -> tuple[list[Doc], list[Doc], list[float]]:
    rng = random.Random(seed)
    held, train, truth = [], [], []
    for index in range(pairs):
        item, candidate, similarity = build(rng, index)
        held.append(item)
        train.append(candidate)
        truth.append(similarity)
    return held, train, truth


def _decontaminate(held: list[Doc], train: list[Doc]) -> list[bool]:
    config = Decontamination()
    for index, item in enumerate(held):
        item.id = f"h{index}"
    units = split_units("test", held, config)
    decontaminator = Decontaminator(units, config, {"test": "curated:test"})
    out = list(decontaminator(train, Stats()))
    return [isinstance(item, Rejection) for item in out]


def _check(removed: list[bool], truth: list[float], threshold: float) -> tuple[float, int, int]:
    at_or_above = [r for r, s in zip(removed, truth, strict=True) if s >= threshold]
    below = [r for r, s in zip(removed, truth, strict=True) if s < threshold - MARGIN]
    return sum(at_or_above) / len(at_or_above), sum(below), len(at_or_above)


def test_prompt_containment_recall():
    def build(rng: random.Random, index: int):
        prompt = text(rng, rng.randint(20, 40))
        copy = substitute(rng, prompt, rng.randint(0, 4))
        wrapped = f"{text(rng, rng.randint(0, 15))} {copy} {text(rng, rng.randint(0, 15))}"
        item = doc("held", "h", index, [prompt, text(rng, 5)])
        candidate = doc("train", "t", index, [text(rng, 10), text(rng, 50), wrapped, text(rng, 40)])
        return item, candidate, oracle_containment(prompt, wrapped)

    held, train, truth = _sweep_docs(1, 800, build)
    recall, below, n = _check(_decontaminate(held, train), truth, 0.7)
    assert n >= 100 and sum(s < 0.7 for s in truth) >= 100  # both sides of the threshold sampled
    assert recall >= 0.99 and below == 0


def test_answer_jaccard_recall():
    def build(rng: random.Random, index: int):
        answer = text(rng, 150)
        copy = substitute(rng, answer, rng.randint(0, 12))
        item = doc("held", "h", index, [text(rng, 12), answer])
        candidate = doc("train", "t", index, [text(rng, 12), copy])
        removed_by = max(oracle_jaccard(answer, copy, 8), oracle_containment(answer, copy))
        jaccard = oracle_jaccard(answer, copy, 8)
        return item, candidate, (jaccard, removed_by)

    held, train, truth = _sweep_docs(2, 400, build)
    removed = _decontaminate(held, train)
    recall, _, n = _check(removed, [t[0] for t in truth], 0.7)
    assert n >= 100 and recall >= 0.99
    # Containment (>= Jaccard) is the other test on answers: below both, nothing is removed.
    assert not any(
        r for r, (_, either) in zip(removed, truth, strict=True) if either < 0.7 - MARGIN
    )
    assert sum(t[0] < 0.7 for t in truth) >= 100


def test_near_dedup_recall_at_threshold():
    rng = random.Random(5)
    docs, truth = [], []
    for index in range(300):
        answer = text(rng, 200)
        copy = substitute(rng, answer, rng.randint(4, 16))
        truth.append(oracle_jaccard(answer, copy, 5))
        for n, response in enumerate((answer, copy)):
            item = doc("x", "f", 2 * index + n, [f"question {index} {n}", response])
            item.hash = text_hash("\n".join(item.conversations))
            item.minhash = signature(response, 5, 128)
            docs.append(item)
    out = list(Deduplicator(exact=True, near=True, threshold=0.7, num_perm=128)(docs, Stats()))
    removed = [isinstance(item, Rejection) for item in out[1::2]]
    assert not any(isinstance(item, Rejection) for item in out[0::2])
    recall, below, n = _check(removed, truth, 0.7)
    assert n >= 60 and sum(s < 0.7 for s in truth) >= 60
    assert recall >= 0.99 and below == 0
    for item, similarity in zip(out[1::2], truth, strict=True):
        if isinstance(item, Rejection):
            assert item.extra["similarity"]["value"] == pytest.approx(similarity, abs=1e-4)


def test_html_report_shows_contamination(planted_run, tmp_path: Path):
    from lima.report.render import render
    from tests.test_report_render import data

    report = data()
    report["curate_stats"] = json.loads((planted_run["out"] / "stats.json").read_text())
    html = render(report, {}, tmp_path).read_text()
    section = html[html.index('id="contamination"') :]
    section = section[: section.index("</table>")]
    for name, found in report["curate_stats"]["contamination"]["sets"].items():
        assert f"<td>{name}</td>" in section
        row = section[section.index(f"<td>{name}</td>") :].split("</tr>")[0]
        assert f"<td>{found['removed']}</td>" in row
    assert "8 were removed" in html


def test_evaluation_set_names_stay_distinct():
    from pydantic import ValidationError

    base = {"sources": [{"name": "a", "kind": "authored", "uri": "x", "quota": 1}]}
    for bad in (
        [{"name": "test", "uri": "y"}],
        [{"name": "b", "uri": "y"}, {"name": "b", "uri": "z"}],
    ):
        with pytest.raises(ValidationError, match="extra_sets names"):
            DataSpec.model_validate({**base, "decontamination": {"extra_sets": bad}})
    experiment = Experiment.model_validate(
        {
            "apiVersion": "lima-run.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": "names"},
            "spec": {
                "data": {
                    **base,
                    "decontamination": {"extra_sets": [{"name": "mt", "uri": "a.jsonl"}]},
                },
                "generate": {
                    "prompt_sets": [
                        {"name": "dev", "uri": "q.jsonl"},  # a file named like a split
                        {"name": "mt", "uri": "b.jsonl"},  # a name an extra set already has
                        {"name": "again", "uri": "a.jsonl"},  # a file already listed
                    ]
                },
                "judge": {"selection_prompts": 1},
            },
        }
    )
    sets = effective_data(experiment.spec).decontamination.extra_sets
    assert [(s.name, s.uri) for s in sets] == [
        ("mt", "a.jsonl"),
        ("generate-dev", "q.jsonl"),
        ("generate-mt", "b.jsonl"),
    ]
    off = experiment.model_copy(deep=True)
    off.spec.data.decontamination.generate_sets = False
    assert [s.name for s in effective_data(off.spec).decontamination.extra_sets] == ["mt"]
