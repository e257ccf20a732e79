"""The judge is stated explicitly: a real model without a real judge fails validation with a
message saying how to set one; the proxy stays for the tiny demo (and for a real model only with
`allow_proxy: true`); each prompt set asks only its own questions."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from lima.errors import SpecError
from lima.spec.load import load_experiment, parse_experiment

REPO = Path(__file__).resolve().parents[1]
BASE: dict[str, Any] = {
    "apiVersion": "lima-run.io/v1alpha1",
    "kind": "Experiment",
    "metadata": {"name": "judged"},
    "spec": {"data": {"sources": [{"name": "a", "kind": "authored", "uri": "x", "quota": 1}]}},
}


def document(base: str = "tiny", **judge: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    out["spec"]["model"] = {"base": base}
    if judge:
        out["spec"]["judge"] = judge
    return out


def problems(doc: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse_experiment(doc, "judged.yaml")
    return str(info.value)


def test_the_demo_keeps_the_proxy() -> None:
    demo = load_experiment(REPO / "examples" / "experiment.yaml")
    assert demo.spec.judge.backend == "reference"
    assert parse_experiment(document(), "x").spec.judge.backend == "reference"  # tiny default


@pytest.mark.parametrize("model", ["smollm2-135m", "meta-llama/Llama-2-7b-hf", "/models/mine"])
def test_a_real_model_without_a_real_judge_fails_with_how_to(model: str) -> None:
    text = problems(document(model))
    assert "spec.judge.backend is not set" in text and model in text
    for how in ("backend: openai", "LIMA_JUDGE_BASE_URL", "backend: hf", "allow_proxy"):
        assert how in text
    assert "a real model" in problems(document(model, backend="reference"))


def test_real_judges_and_an_explicit_proxy_validate() -> None:
    hf = parse_experiment(document("smollm2-135m", backend="hf", model="smollm2-135m"), "x")
    assert hf.spec.judge.backend == "hf" and hf.spec.judge.prompts == "lima"
    openai = parse_experiment(document("/m", backend="openai", model="gpt-4o"), "x")
    assert [p.value for p in openai.spec.judge.protocols] == ["pairwise", "absolute", "likert"]
    proxy = parse_experiment(document("/m", backend="reference", allow_proxy=True), "x")
    assert proxy.spec.judge.allow_proxy


def test_each_prompt_set_asks_its_own_questions() -> None:
    mt = parse_experiment(document("/m", backend="openai", prompts="mt-bench"), "x")
    assert [p.value for p in mt.spec.judge.protocols] == ["pairwise", "single"]
    assert "not asked by prompt set `mt-bench`" in problems(
        document("/m", backend="openai", prompts="mt-bench", protocols=["likert"])
    )
    assert "not asked by the reference judge" in problems(
        document(backend="reference", protocols=["single"])
    )
