"""Issue 13, "curation drops good data silently": a source smaller than dev + test went entirely
to the held-out splits, leaving an EMPTY train.jsonl with exit 0 and only a line in stats.json.
Through the real curate stage (the runner, as `lima run` calls it): held-out prompts come only
from the surplus over the training quotas, and every shortfall is a console warning with numbers.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

from lima.spec import Experiment

WORDS = [
    "amber", "basalt", "cobalt", "delta", "ember", "fjord", "glacier", "harbor", "indigo",
    "juniper", "kelp", "lagoon", "meadow", "nebula", "obsidian", "prairie", "quartz", "reef",
    "savanna", "tundra", "umber", "valley", "willow", "xenon", "yarrow", "zephyr", "canyon",
    "dune", "estuary", "forest", "geyser", "heath", "island", "jungle", "karst", "lichen",
]  # fmt: skip


def authored_rows(path: Path, count: int) -> Path:
    """`count` distinct authored conversations (no two near-duplicates, no shared 5-grams)."""
    rng = random.Random(13)
    with path.open("w") as out:
        for index in range(count):
            words = rng.sample(WORDS, 24)
            prompt = f"Question {index}: describe the {words[0]} near the {words[1]}?"
            answer = " ".join(words[2:]) + f" (answer {index})."
            out.write(json.dumps({"prompt": prompt, "response": answer}) + "\n")
    return path


def experiment(source: Path, quota: int, dev: int, test: int) -> Experiment:
    return Experiment.model_validate(
        {
            "apiVersion": "lima-run.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": "starve"},
            "spec": {
                "data": {
                    "sources": [
                        {"name": "mine", "kind": "authored", "uri": str(source), "quota": quota}
                    ],
                    "splits": {"dev": dev, "test": test},
                },
                "judge": {"selection_prompts": 1},
            },
        }
    )


def curate(ray_local, settings, source: Path, caplog, **sizes: int):
    from lima.dag import get
    from lima.runner import run_experiment
    from lima.store import open_store

    spec = experiment(source, **sizes)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lima.curate"):
        (result,) = run_experiment(spec, settings, stages=[get("curate")])
    assert result.status == "done", result.message
    store = open_store(settings, spec.spec.storage)
    manifest = store.manifest("curate", result.key)
    splits = {
        name: store.read_object(manifest, f"{name}.jsonl").decode().splitlines()
        for name in ("train", "dev", "test")
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return result, {k: len(v) for k, v in splits.items()}, warnings


def test_a_source_smaller_than_dev_plus_test_keeps_its_training_rows(
    ray_local, settings, tmp_path: Path, caplog
) -> None:
    source = authored_rows(tmp_path / "three.jsonl", 3)
    result, sizes, warnings = curate(ray_local, settings, source, caplog, quota=8, dev=2, test=3)
    # Before: dev 2 + test 1, train EMPTY. Now train keeps every row its quota asks for.
    assert sizes == {"train": 3, "dev": 0, "test": 0}
    assert result.summary["train"] == 3
    expected = (
        "the sources have 3 usable rows, 8 of them reserved for the training quotas, 0 left over"
    )
    shortfalls = result.summary["shortfalls"]
    assert any(s.startswith("dev: 0 of 2 prompts") and expected in s for s in shortfalls)
    assert any(s.startswith("test: 0 of 3 prompts") and expected in s for s in shortfalls)
    assert any(s.startswith("mine: 3 of 8 selected (5 short)") for s in shortfalls)
    # On the console, not only in stats.json: one warning per shortfall, with its numbers.
    for line in shortfalls:
        assert f"curate shortfall: {line}" in warnings, warnings


def test_held_out_prompts_come_from_the_surplus_only(
    ray_local, settings, tmp_path: Path, caplog
) -> None:
    source = authored_rows(tmp_path / "twelve.jsonl", 12)
    result, sizes, warnings = curate(ray_local, settings, source, caplog, quota=8, dev=5, test=5)
    # 4 rows over the quota: they are the held-out prompts, in the dev:test proportion.
    assert sizes == {"train": 8, "dev": 2, "test": 2}
    assert result.summary["train"] == 8
    line = (
        "dev: 2 of 5 prompts (the sources have 12 usable rows, 8 of them reserved for the "
        "training quotas, 4 left over; held-out prompts never take training rows)"
    )
    assert line in result.summary["shortfalls"]
    assert f"curate shortfall: {line}" in warnings


def test_a_missing_source_exits_2_in_one_line_before_ray_starts(tmp_path: Path) -> None:
    """Before: `lima run` started Ray, then failed with exit 1. Now: exit 2, one line naming
    the source, and nothing started (no stage log, no Ray session folder)."""
    from tests.test_cli import demo_variant, lima

    def lose_a_source(spec: dict) -> None:
        spec["data"]["sources"][0]["uri"] = str(tmp_path / "nowhere" / "*.jsonl")

    path = demo_variant(tmp_path / "exp", lose_a_source)
    done = lima("run", str(path), work=tmp_path / "w", timeout=120)
    assert done.returncode == 2, done.stderr
    assert "nowhere" in done.stderr and "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if "nowhere" in line]) == 1
    assert not (tmp_path / "w" / "logs").exists()  # nothing started


def test_validate_refuses_splits_larger_than_the_surplus(tmp_path: Path) -> None:
    """`lima validate` counts the local sources' rows (an upper bound) and refuses dev + test
    beyond what they can give over the quotas, naming the field and the numbers."""
    import yaml

    from tests.test_cli import lima

    source = authored_rows(tmp_path / "twelve.jsonl", 12)

    def spec(dev: int, test: int) -> Path:
        document = experiment(source, quota=8, dev=dev, test=test).model_dump(
            mode="json", exclude_defaults=True
        )
        path = tmp_path / f"spec-{dev}-{test}.yaml"
        path.write_text(yaml.safe_dump(document))
        return path

    refused = lima("validate", str(spec(5, 5)), work=tmp_path / "w", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    message = refused.stderr.replace("\n", " ")
    assert "spec.data.splits: dev 5 + test 5 = 10 held-out prompts" in message
    assert "at most 4 rows beyond their training quotas" in message
    assert "mine 12 (quota 8)" in message
    fits = lima("validate", str(spec(2, 2)), work=tmp_path / "w", cwd=tmp_path)
    assert fits.returncode == 0, fits.stderr


def test_validate_counts_every_kind_of_source(tmp_path: Path) -> None:
    """The demo (Stack Exchange, wikiHow, WritingPrompts, NI, authored) with paper-sized
    splits: more than its files hold beyond the quotas."""
    from tests.test_cli import demo_variant, lima

    def paper_splits(spec: dict) -> None:
        spec["data"]["splits"] = {"dev": 50, "test": 500}

    done = lima("validate", str(demo_variant(tmp_path / "exp", paper_splits)), work=None)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "spec.data.splits: dev 50 + test 500 = 550 held-out prompts" in done.stderr
    for counted in (
        "se-stem 18 (quota 5)",
        "wikihow 142 (quota 10)",
        "writingprompts 90 (quota 15)",
        "natural-instructions 7 (quota 5)",
    ):
        assert counted in done.stderr.replace("\n", " "), done.stderr
