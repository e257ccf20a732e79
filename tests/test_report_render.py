"""The report renders HTML + PNGs with the numbers it was given, and `locate` finds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lima.errors import LimaError
from lima.report import locate
from lima.report.figures import draw_all
from lima.report.render import render

PNG = b"\x89PNG\r\n\x1a\n"


def wtl(win: float, tie: float, loss: float, n: int = 40) -> dict:
    return {
        "n": n,
        "invalid": 1,
        "win": win,
        "tie": tie,
        "loss": loss,
        "resamples": 1000,
        "seed": 0,
        "position_consistency": 0.9,
        "score": win + tie / 2,
        "ci": {
            "score": [win + tie / 2 - 0.08, win + tie / 2 + 0.08],
            "win": [win - 0.1, win + 0.1],
            "tie": [tie - 0.05, tie + 0.05],
            "loss": [max(0, loss - 0.1), loss + 0.1],
        },
    }


def rated(protocol: str, shares: dict[str, float], n: int = 20) -> dict:
    out = {
        "protocol": protocol,
        "n": n,
        "invalid": 0,
        "shares": shares,
        "counts": {k: round(v * n) for k, v in shares.items()},
    }
    if protocol == "likert":
        out["mean"] = sum(int(k) * v for k, v in shares.items())
    return out


def audit_rows() -> list[dict]:
    """Per-prompt rows as `lima.report.audit` builds them: a one-turn and a two-turn prompt."""
    reasoning = [
        {"order": "fine-tuned answer shown as A", "label": "A", "text": "A lists <steps>."},
        {"order": "fine-tuned answer shown as B", "label": "B", "text": "B is clearer."},
    ]
    return [
        {
            "id": "q1",
            "turn": 1,
            "earlier": [],
            "prompt": "How do I brew coffee?",
            "answer": "1. Grind the beans.\n2. Pour water at 93 C.",
            "finish": "eot",
            "other": "Use coffee.",
            "verdict": "win",
            "reasoning": reasoning,
            "ratings": {"absolute": "pass", "likert": 5},
        },
        {
            "id": "m1",
            "turn": 2,
            "earlier": ["Write a haiku."],
            "prompt": "Now rewrite it about rain.",
            "answer": "Rain on the tin roof\x00",  # a random model emits control characters
            "finish": "length",
            "other": None,
            "verdict": "invalid",
            "reasoning": [],
            "ratings": {},
        },
    ]


def data() -> dict:
    likert = {str(k): v for k, v in zip(range(1, 7), [0.05, 0.1, 0.15, 0.2, 0.3, 0.2], strict=True)}
    lineage = {
        name: {
            "stage": name,
            "key": f"key-{name}",
            "uri": f"file:///a/{name}",
            "digest": f"{name}-digest-0123456789abcdef",
            "code_version": "1",
            "ended_at": "2026-11-22T00:00:00",
            "inputs": [],
        }
        for name in ("curate", "train", "select", "generate", "judge")
    }
    return {
        "experiment": "demo",
        "model": {"base": "tiny", "stand_in": True, "note": "a randomly initialised preset"},
        "audit_baseline": "gpt-3",
        "audit_limit": 40,
        "audit": {"test": audit_rows()},
        "results": {
            "judge": "reference:all-MiniLM-L6-v2",
            "proxy": True,
            "system": "lima",
            "verdicts": 120,
            "invalid": 1,
            "sets": {
                "test": {
                    "prompts": 40,
                    "turns": 40,
                    "pairwise": {
                        "gpt-3": wtl(0.438, 0.312, 0.25),
                        "base-model": wtl(0.7, 0.1, 0.2),
                    },
                    "absolute": {
                        "lima": rated("absolute", {"fail": 0.12, "pass": 0.38, "excellent": 0.5})
                    },
                    "likert": {"lima": rated("likert", likert)},
                    "safety": {
                        "lima": {
                            **rated("safety", {"safe": 0.8, "unsafe": 0.2}),
                            "tagged_prompts": 5,
                        }
                    },
                }
            },
        },
        "selection": {
            "selected_epoch": 7,
            "reference_epoch": 5,
            "criterion": "win rate",
            "judge": "j",
            "proxy": True,
            "dev_prompts": 50,
            "epochs": [
                {
                    "epoch": e,
                    "score": s,
                    "dev_perplexity": p,
                    "reference": e == 5,
                    "wtl": None if e == 5 else wtl(s, 0.0, 1 - s),
                    "answers": {"turns": 50, "finish_reasons": {"eot": 48, "length": 2}},
                }
                for e, s, p in ((5, 0.5, 3.1), (6, 0.55, 3.4), (7, 0.61, 3.9))
            ],
        },
        "generation": {
            "decode": {
                "top_p": 0.9,
                "temperature": 0.7,
                "repetition_penalty": 1.2,
                "max_new_tokens": 2048,
                "engine": "hf",
            },
            "sets": {
                "test": {
                    "systems": {
                        "lima": {
                            "prompts": 40,
                            "turns": 40,
                            "finish_reasons": {"eot": 39, "length": 1},
                            "mean_answer_tokens": 211.5,
                        }
                    }
                }
            },
        },
        "mix": [{"source": "stackexchange", "quota": 400, "train": 397, "dev": 2, "test": 3}],
        "training": {
            "step": [1, 2, 3],
            "loss": [2.0, 1.5, 1.2],
            "lr": [1e-5, 5e-6, 1e-6],
            "epoch": [1],
            "epoch_loss": [1.5],
            "dev_perplexity": [3.3],
        },
        "train_spec": {
            "epochs": 15,
            "lr": 1e-5,
            "final_lr": 1e-6,
            "global_batch_size": 32,
            "residual_dropout": 0.3,
        },
        "lineage": lineage,
        "curate_stats": None,
    }


def test_report_html_and_figures_show_the_numbers(tmp_path: Path) -> None:
    report = data()
    figures = draw_all(report, tmp_path)
    assert set(figures) == {
        "training",
        "perplexity_vs_quality",
        "data_mix",
        "wtl-test",
        "absolute-test",
        "likert-test",
    }
    for name in figures.values():
        assert (tmp_path / name).read_bytes()[:8] == PNG
    html = render(report, figures, tmp_path).read_text()
    for expected in (
        "43.8%",
        "31.2%",
        "25.0%",
        "[33.8%, 53.8%]",
        "Proxy judge",
        "7 (selected)",
        "50.0%",
        "3.90",
        "397",
        "stackexchange",
        "judge-digest-012",
        'src="wtl-test.png"',
        "211.5",
        "39",
        "80.0%",
        "59.4%",  # win + tie/2 against gpt-3
        "[51.4%, 67.4%]",  # its CI
        "stand-in-banner",
        "Model preset <code>tiny</code>",
        "How do I brew coffee?",
        "A lists &lt;steps&gt;.",  # the judge's reasoning, escaped
        "fine-tuned answer shown as B",
        "Now rewrite it about rain.",
        "(earlier user turn) Write a haiku.",
        "(hit the length limit)",
        "Rain on the tin roof\ufffd",
    ):
        assert expected in html, expected
    assert "\x00" not in html


def test_report_without_proxy_or_pairwise_still_renders(tmp_path: Path) -> None:
    report = data()
    report["results"]["proxy"] = False
    del report["results"]["sets"]["test"]["pairwise"]
    empty = {"protocol": "likert", "n": 0, "invalid": 0, "counts": {}, "shares": {}}
    report["results"]["sets"]["test"]["likert"]["silent"] = empty  # a system never judged
    report["training"] = {k: [] for k in report["training"]}
    figures = draw_all(report, tmp_path)
    assert "wtl-test" not in figures and "training" not in figures
    html = render(report, figures, tmp_path).read_text()
    assert "Proxy judge" not in html and "Pairwise preference" not in html
    assert "stand-in-banner" in html  # the tiny model is still a stand-in
    report["model"] = {"base": "/models/llama-7b", "stand_in": False, "note": None}
    assert "stand-in-banner" not in render(report, figures, tmp_path).read_text()


def test_symmetric_judge_position_consistency_is_na_and_fallback_is_shown(tmp_path: Path) -> None:
    report = data()
    for row in report["results"]["sets"]["test"]["pairwise"].values():
        row.update(position_consistency=None, position_consistency_note="n/a: symmetric judge")
    report["selection"].update(fallback="last_epoch", fallback_reason="judge x: 0 of 8 valid")
    html = render(report, draw_all(report, tmp_path), tmp_path).read_text()
    assert "n/a (symmetric judge)" in html and "90.0%" not in html
    assert "selection-fallback" in html and "judge x: 0 of 8 valid" in html


def test_locate_names_the_latest_report_or_explains(settings) -> None:
    from lima.spec import StorageSpec
    from lima.store import open_store

    store = open_store(settings, StorageSpec())
    with pytest.raises(LimaError, match="no report for experiment 'demo'"):
        locate(store, "demo")
    folder = settings.work_dir / "out"
    folder.mkdir(parents=True)
    (folder / "report.html").write_text("<html></html>")
    manifest = store.publish(
        "report", "k1", folder, code_version="1", config={}, inputs=[], started_at="now"
    )
    store.record_run(
        "demo",
        "r1",
        {"started_at": "1", "stages": [{"stage": "report", "key": "k1", "status": "done"}]},
    )
    path = Path(locate(store, "demo"))
    assert path.read_text() == "<html></html>" and manifest.key == "k1"
    assert json.loads(json.dumps(str(path)))


def test_locate_downloads_the_report_from_s3(s3_settings, tmp_path: Path) -> None:
    from lima.spec import StorageSpec
    from lima.store import open_store

    store = open_store(s3_settings, StorageSpec())
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "report.html").write_text('<img src="wtl-test.png">')
    (folder / "wtl-test.png").write_bytes(PNG)
    manifest = store.publish(
        "report", "k2", folder, code_version="1", config={}, inputs=[], started_at="now"
    )
    store.record_run(
        "demo",
        "r1",
        {"started_at": "1", "stages": [{"stage": "report", "key": "k2", "status": "cached"}]},
    )
    assert locate(store, "demo").startswith("s3://lima/")
    path = Path(locate(store, "demo", tmp_path / "reports"))
    assert path == tmp_path / "reports" / manifest.key / "report.html"
    assert (path.parent / "wtl-test.png").read_bytes() == PNG


def test_audit_rows_pair_each_turn_with_both_answers_and_the_reasoning(tmp_path: Path) -> None:
    from lima.report.audit import audit_rows

    def jsonl(path: Path, rows: list[dict]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    jsonl(tmp_path / "prompts/test.jsonl", [{"id": "m", "turns": ["Q1", "Q2"]}])
    for system, answers in {"lima": ["a1", "a2"], "gpt": ["b1", "b2"]}.items():
        turns = [
            {"prompt": q, "answer": a, "finish_reason": "eot"}
            for q, a in zip(["Q1", "Q2"], answers, strict=True)
        ]
        jsonl(tmp_path / f"answers/test/{system}.jsonl", [{"id": "m", "turns": turns}])
    verdicts = [
        {"set": "test", "system": "lima", "baseline": "gpt", "protocol": "pairwise",
         "prompt_id": "m", "turn": 2, "value": "loss", "valid": True,
         "raw": ["B wins.", "A wins."], "detail": {"ab": "B", "ba": "A"}},
        {"set": "test", "system": "lima", "baseline": None, "protocol": "likert",
         "prompt_id": "m", "turn": 1, "value": 4, "valid": True, "raw": ["4"], "detail": {}},
    ]  # fmt: skip
    first, second = audit_rows(tmp_path, verdicts, "lima", "gpt")["test"]
    assert (first["turn"], first["verdict"], first["ratings"]) == (1, None, {"likert": 4})
    assert second["earlier"] == ["Q1"] and (second["answer"], second["other"]) == ("a2", "b2")
    assert second["verdict"] == "loss"
    assert [r["text"] for r in second["reasoning"]] == ["B wins.", "A wins."]
