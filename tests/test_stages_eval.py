"""select -> generate -> judge -> report through the real runner, store and Ray Data pool.

The curate and train artifacts are stand-ins with fixture content (this file tests the stages
downstream of them): the "train" artifact holds three epochs of the tiny preset (random, barely
trained, fine-tuned) and metrics whose dev perplexity is lowest at the barely trained epoch, so
selecting by judged win rate and selecting by perplexity disagree.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES
from eval_helpers import QA, SAFETY_QA, build_model, model_spec, rows

from lima.dag import Stage, get
from lima.judging.selection import by_score, decide
from lima.spec import Experiment
from lima.stages.base import StageContext

pytest_plugins = ["eval_fixtures"]  # the tuned_model / base_model fixtures
PERPLEXITY = {1: 50.0, 2: 9.0, 3: 20.0}


def _curate(ctx: StageContext) -> dict[str, Any]:
    for split, items in {
        "train": rows([*QA, SAFETY_QA], "t"),
        "dev": rows(QA[:4], "d"),
        "test": rows([*QA[3:], SAFETY_QA], "x"),
    }.items():
        (ctx.output_dir / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    (ctx.output_dir / "stats.json").write_text("{}\n")
    return {}


def _train_stage(models: dict[int, Path]) -> Stage:
    def run(ctx: StageContext) -> dict[str, Any]:
        for epoch, folder in models.items():
            shutil.copytree(folder, ctx.output_dir / f"epoch-{epoch}")
        records = [
            {
                "kind": "step",
                "epoch": 1 + s // 2,
                "step": s,
                "loss": 3.0 - 0.4 * s,
                "lr": 1e-3 - 1e-4 * s,
            }
            for s in range(1, 7)
        ]
        records += [
            {"kind": "epoch", "epoch": e, "loss": 3.0 - e, "dev_perplexity": p}
            for e, p in PERPLEXITY.items()
        ]
        (ctx.output_dir / "metrics.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in records)
        )
        return {}

    return Stage("train", "fixture", ("curate",), lambda e: {"fixture": 1}, run)


def experiment(**judge: Any) -> Experiment:
    return Experiment.model_validate(
        {
            "apiVersion": "lima-run.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": "evaltest"},
            "spec": {
                "data": {
                    "sources": [
                        {"name": "authored", "kind": "authored", "uri": "x.jsonl", "quota": 7}
                    ]
                },
                "model": model_spec().model_dump(),
                "train": {"epochs": 3, "eligible_epochs": [1, 2, 3]},
                "generate": {
                    "max_new_tokens": 16,
                    "batch_size": 4,
                    "prompt_sets": [
                        {"name": "test", "uri": "curated:test"},
                        {
                            "name": "extra",
                            "uri": str(FIXTURES / "generation" / "mixed_prompts.jsonl"),
                            "limit": 2,
                        },
                    ],
                },
                "judge": {
                    "protocols": ["pairwise", "absolute", "likert", "safety"],
                    "selection_prompts": 4,
                    **judge,
                    "bootstrap_resamples": 200,
                    "baselines": [
                        {"name": "base-model", "model": "tiny"},
                        {
                            "name": "supplied",
                            "answers": str(FIXTURES / "generation" / "baseline_answers.jsonl"),
                        },
                    ],
                },
                "resources": {"generate": {"workers": 1, "cpus": 1}},
            },
        }
    )


@pytest.mark.slow  # Ray Data actors + several tiny models: ~30-60 s on 2 shared cores
def test_select_generate_judge_report(
    settings,
    ray_local,
    tmp_path: Path,
    tuned_model: Path,
    base_model: Path,
) -> None:
    from lima.report import locate
    from lima.runner import run_experiment
    from lima.store import open_store

    barely = build_model(tmp_path / "barely", steps=3)
    stages = [
        Stage("curate", "fixture", (), lambda e: {"fixture": 1}, _curate),
        _train_stage({1: base_model, 2: barely, 3: tuned_model}),
        *(get(n) for n in ("select", "generate", "judge", "report")),
    ]
    exp = experiment()
    results = run_experiment(exp, settings, stages=stages)
    assert [r.status for r in results] == ["done"] * 6, [r.message for r in results]
    store = open_store(settings, exp.spec.storage)
    out = {r.stage: store.manifest(r.stage, r.key) for r in results}

    selection = json.loads(store.read_object(out["select"], "selection.json"))
    scores = {e["epoch"]: e["score"] for e in selection["epochs"]}
    assert selection["selected_epoch"] == 3 == max(scores, key=scores.get)
    assert {e["epoch"]: e["dev_perplexity"] for e in selection["epochs"]} == PERPLEXITY
    assert min(PERPLEXITY, key=PERPLEXITY.get) != selection["selected_epoch"]
    assert selection["epochs"][2]["wtl"]["win"] > 0.5 and selection["proxy"] is True
    tuned = selection["epochs"][2]
    assert tuned["asked"] == 4 and selection["fallback"] is None
    assert tuned["wtl"]["ci"]["score"][0] <= tuned["score"] <= tuned["wtl"]["ci"]["score"][1]
    assert tuned["wtl"]["position_consistency"] is None  # the proxy is symmetric: n/a

    generated = json.loads(store.read_object(out["generate"], "generate.json"))
    test_set = generated["sets"]["test"]
    assert test_set["prompts"] == 4
    assert test_set["systems"]["lima"]["finish_reasons"] == {"eot": 4}
    assert set(test_set["systems"]) == {"lima", "base-model", "supplied"}
    assert generated["sets"]["extra"]["systems"]["supplied"]["prompts"] == 2

    results_json = json.loads(store.read_object(out["judge"], "results.json"))
    assert results_json["proxy"] is True
    pairwise = results_json["sets"]["test"]["pairwise"]["base-model"]
    assert pairwise["n"] == 4 and pairwise["win"] > pairwise["loss"]
    assert results_json["sets"]["test"]["pairwise"]["supplied"]["n"] == 0  # no shared ids
    assert results_json["sets"]["test"]["safety"]["lima"]["tagged_prompts"] == 1
    assert results_json["sets"]["extra"]["pairwise"]["supplied"]["n"] == 3  # p1 + c1 two turns

    html = store.read_object(out["report"], "report.html").decode()
    assert "Proxy judge" in html and 'id="stand-in-banner"' in html
    assert 'id="per-prompt"' in html and "n/a (symmetric judge)" in html
    assert "What do bees make?" in html  # a test prompt with both answers and the reasoning
    assert f"{pairwise['win']:.1%}" in html
    assert "epoch-3" not in html or "3 (selected)" in html
    for figure in (
        "wtl-test.png",
        "absolute-test.png",
        "likert-test.png",
        "training.png",
        "perplexity_vs_quality.png",
        "data_mix.png",
    ):
        assert store.read_object(out["report"], figure)[:8] == b"\x89PNG\r\n\x1a\n"
    assert out["judge"].digest[:16] in html  # lineage
    path = Path(locate(store, "evaltest"))
    assert path.name == "report.html" and path.is_file()

    again = run_experiment(exp, settings, stages=stages)
    assert [r.status for r in again] == ["cached"] * 6


def _scripted(body: dict[str, Any]) -> Any:
    """An LLM judge with a position bias (always "A"), fixed ratings, and garbage for one prompt."""
    from scripted_endpoint import Reply, first_user_message

    text = first_user_message(body)  # a retry appends a reminder as the last message
    if "How many legs" in text:
        return Reply("I would rather not say.")
    if "Fail, Pass or Excellent" in text:
        return Reply("Meets the request.\nPass")
    if "helpfulness:" in text:  # the Appendix D rubric: reasoning, then the bare score twice
        return Reply("Helpful enough.\n4\n4")
    if "Verdict: unsafe" in text:
        return Reply("Verdict: safe")
    return Reply("Both fine, A reads better.\nAnswer A is significantly better.")


@pytest.mark.slow  # a second pipeline run (~30-60 s on 2 shared cores)
def test_the_same_stages_with_an_openai_compatible_endpoint(
    settings, ray_local, tmp_path: Path, tuned_model: Path, base_model: Path
) -> None:
    from scripted_endpoint import ScriptedEndpoint

    from lima.runner import run_experiment
    from lima.store import open_store

    stages = [
        Stage("curate", "fixture", (), lambda e: {"fixture": 1}, _curate),
        _train_stage({1: base_model, 3: tuned_model}),
        *(get(n) for n in ("select", "generate", "judge", "report")),
    ]
    exp = experiment(backend="openai", model="scripted", max_retries=1)
    with ScriptedEndpoint(_scripted) as endpoint:
        live = settings.model_copy(update={"judge_base_url": endpoint.url})
        results = run_experiment(exp, live, stages=stages)
        assert endpoint.requests > 0
    assert [r.status for r in results] == ["done"] * 6, [r.message for r in results]
    store = open_store(live, exp.spec.storage)
    out = {r.stage: store.manifest(r.stage, r.key) for r in results}
    selection = json.loads(store.read_object(out["select"], "selection.json"))
    # "A" in both orders is a tie by the both-orders rule: every epoch scores 0.5 minus the
    # invalid prompt; the draw goes to the earlier epoch.
    assert selection["selected_epoch"] == 1 and selection["proxy"] is False
    judged = json.loads(store.read_object(out["judge"], "results.json"))
    assert judged["judge"] == "openai:scripted" and judged["proxy"] is False
    pairwise = judged["sets"]["test"]["pairwise"]["base-model"]
    assert pairwise["tie"] == 1.0 and pairwise["position_consistency"] == 0.0
    assert pairwise["invalid"] == 1  # the garbage answers, after one retry
    absolute = judged["sets"]["test"]["absolute"]["lima"]
    assert absolute["shares"]["pass"] == 1.0 and absolute["invalid"] == 1
    assert judged["sets"]["test"]["likert"]["lima"]["mean"] == 4.0
    assert judged["sets"]["test"]["safety"]["lima"]["shares"]["safe"] == 1.0
    html = store.read_object(out["report"], "report.html").decode()
    assert "Proxy judge" not in html and "openai:scripted" in html
    assert "Answer A is significantly better." in html  # the judge's reasoning, per prompt
    summary = out["judge"].summary
    assert (
        summary["cache_misses"] > 0
        and "cached" not in store.read_object(out["judge"], "verdicts.jsonl").decode()
    )  # run facts live in the summary, never in hashed files


@pytest.mark.slow  # select only: dev answers of two epochs (~20-40 s on 2 shared cores)
def test_select_refuses_on_no_evidence_unless_a_fallback_is_set(
    settings, ray_local, tuned_model: Path, base_model: Path
) -> None:
    from scripted_endpoint import Reply, ScriptedEndpoint

    from lima.runner import run_experiment
    from lima.store import open_store

    stages = [
        Stage("curate", "fixture", (), lambda e: {"fixture": 1}, _curate),
        _train_stage({1: base_model, 3: tuned_model}),
        get("select"),
    ]
    refuse = experiment(backend="openai", model="mute", max_retries=0)
    with ScriptedEndpoint(lambda body: Reply("I cannot decide.")) as endpoint:
        live = settings.model_copy(update={"judge_base_url": endpoint.url})
        failed = run_experiment(refuse, live, stages=stages)
        assert [r.status for r in failed][-1] == "failed"
        assert "openai:mute" in failed[-1].message and "0 of 4 verdicts valid" in failed[-1].message
        fallback = experiment(
            backend="openai", model="mute", max_retries=0, selection_fallback="last_epoch"
        )
        results = run_experiment(fallback, live, stages=stages)
    # curate and train are the first run's (cached); select ran again with the fallback
    assert [r.status for r in results] == ["cached", "cached", "done"], [r.message for r in results]
    store = open_store(live, fallback.spec.storage)
    manifest = store.manifest("select", results[-1].key)
    selection = json.loads(store.read_object(manifest, "selection.json"))
    assert selection["selected_epoch"] == 3 and selection["fallback"] == "last_epoch"
    assert "0 of 4 verdicts valid" in selection["fallback_reason"]
    assert manifest.summary["fallback"] == "last_epoch"
    assert manifest.summary["fallback_reason"] == selection["fallback_reason"]  # for status


def test_choose_prefers_score_then_the_earlier_epoch() -> None:
    rows_ = [
        {"epoch": 5, "score": 0.5},
        {"epoch": 6, "score": 0.7},
        {"epoch": 7, "score": 0.7},
        {"epoch": 8, "score": None},
    ]
    assert by_score(rows_)["epoch"] == 6


def _rows(valid: int, asked: int = 4) -> list[dict[str, Any]]:
    """A reference epoch and two compared epochs with `valid` of `asked` verdicts valid."""

    def compared(epoch: int, ppl: float) -> dict[str, Any]:
        score = 0.75 if valid else None
        wtl = {"n": valid, "invalid": asked - valid, "score": score}
        return {"epoch": epoch, "score": score, "asked": asked, "wtl": wtl, "dev_perplexity": ppl}

    first = {"epoch": 1, "reference": True, "score": 0.5, "asked": 0, "dev_perplexity": 9.0}
    return [first, compared(2, 5.0), compared(3, 7.0)]


def test_selection_refuses_without_evidence_and_names_the_judge() -> None:
    from lima.errors import StageError

    # the reference epoch always scores 0.5: the old "no valid verdict" check could never fire
    with pytest.raises(StageError, match=r"hf:/j .*epoch 2: 0 of 4 verdicts valid.*fallback"):
        decide(_rows(valid=0), "hf:/j", 0.5, None)
    with pytest.raises(StageError, match="epoch 3: 1 of 4"):
        decide(_rows(valid=1), "hf:/j", 0.5, None)  # below the configured share
    assert decide(_rows(valid=2), "hf:/j", 0.5, None).row["epoch"] == 2  # enough: by score


def test_selection_fallbacks_are_explicit_and_recorded() -> None:
    last = decide(_rows(valid=0), "hf:/j", 0.5, "last_epoch")
    assert (last.row["epoch"], last.fallback) == (3, "last_epoch")
    assert "0 of 4" in last.reason
    ppl = decide(_rows(valid=0), "hf:/j", 0.5, "lowest_dev_perplexity")
    assert (ppl.row["epoch"], ppl.fallback) == (2, "lowest_dev_perplexity")
