"""LIMA's chat format: explicit user/assistant turns, each utterance ended by an EOT token.

Paper, Section 3: "To differentiate between each speaker (user and assistant), we introduce a
special end-of-turn token (EOT) at the end of each utterance; this token plays the same role as
EOS of halting generation". A conversation is encoded as

    [bos] <|user|> text <|eot|> <|assistant|> text <|eot|> <|user|> ... <|eot|>

The loss covers every assistant utterance's content tokens and its EOT; everything else
(bos, markers, user text) is masked with -100.

`[bos]` is the base tokenizer's BOS only where that tokenizer starts every text with it itself
(Llama, Mistral, Gemma): the model was pretrained that way. Where it does not (SmolLM2, Qwen,
GPT-2) no BOS is added, which matters: SmolLM2's BOS is `<|im_start|>`, a ChatML marker that pulls
the model back into its own chat format ("system\\n...", "assistant\\n..." in the answers).

Every text is tokenized on its own, so the generation prompt (`encode_prompt`) is exactly the
prefix of the training sequence that precedes the answer's first token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lima.errors import StageError
from lima.spec.model import ModelSpec

IGNORE_INDEX = -100
"""Label value ignored by the cross-entropy loss (PyTorch's default `ignore_index`)."""


@dataclass(frozen=True)
class ChatTokens:
    """Token ids of the chat markers in one tokenizer."""

    user: int
    assistant: int
    eot: int
    bos: int | None
    """The BOS that starts every conversation, or None when the format has none."""


def _spec_of(spec: Any) -> ModelSpec:
    """Accept a ModelSpec or anything carrying one (`ExperimentSpec` has `.model`)."""
    return spec if isinstance(spec, ModelSpec) else spec.model


def _token_id(tokenizer: Any, token: str) -> int | None:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        return None
    return int(token_id)


def leading_bos(tokenizer: Any, spec: Any) -> int | None:
    """The BOS id to start a conversation with, or None.

    Kept only when the tokenizer itself starts text with BOS (how the base was pretrained) and the
    BOS is not one of the turn markers (EOS, the chat tokens): a BOS that is itself a chat marker
    would open a turn of another format.
    """
    bos = tokenizer.bos_token_id
    if bos is None:
        return None
    probe = tokenizer.encode("a", add_special_tokens=True)
    if not probe or probe[0] != bos:
        return None
    model = _spec_of(spec)
    markers = {tokenizer.eos_token_id, tokenizer.unk_token_id}
    markers |= {_token_id(tokenizer, t) for t in chat_token_texts(model)}
    return None if bos in markers else int(bos)


def chat_token_texts(spec: Any) -> tuple[str, str, str]:
    """(user, assistant, EOT) token texts of a spec."""
    model = _spec_of(spec)
    return model.user_token, model.assistant_token, model.eot_token


def special_token_ids(tokenizer: Any, spec: Any) -> ChatTokens:
    """Ids of the user/assistant/EOT tokens; a clear error when the tokenizer lacks one."""
    ids = {}
    for role, token in zip(("user", "assistant", "eot"), chat_token_texts(spec), strict=True):
        token_id = _token_id(tokenizer, token)
        if token_id is None:
            raise StageError(
                f"tokenizer has no {role} token {token!r}; call lima.models.load.add_special_tokens"
            )
        ids[role] = token_id
    return ChatTokens(ids["user"], ids["assistant"], ids["eot"], leading_bos(tokenizer, spec))


def _text_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def format_conversation(
    turns: list[str], tokenizer: Any, spec: Any, *, add_generation_prompt: bool = False
) -> tuple[list[int], list[int]]:
    """Token ids and labels of a conversation whose turns alternate user, assistant, user, ...

    Labels are IGNORE_INDEX except on assistant content tokens and the EOT closing each assistant
    utterance. With `add_generation_prompt` an assistant marker is appended (label masked) so the
    model continues with the next assistant utterance.
    """
    if not turns:
        raise ValueError("a conversation needs at least one turn")
    marks = special_token_ids(tokenizer, spec)
    input_ids: list[int] = []
    labels: list[int] = []
    if marks.bos is not None:
        input_ids.append(marks.bos)
        labels.append(IGNORE_INDEX)
    for index, text in enumerate(turns):
        assistant = index % 2 == 1
        body = [*_text_ids(tokenizer, text), marks.eot]
        input_ids.append(marks.assistant if assistant else marks.user)
        labels.append(IGNORE_INDEX)
        input_ids.extend(body)
        labels.extend(body if assistant else [IGNORE_INDEX] * len(body))
    if add_generation_prompt:
        input_ids.append(marks.assistant)
        labels.append(IGNORE_INDEX)
    return input_ids, labels


def encode_prompt(turns_so_far: list[str], tokenizer: Any, spec: Any) -> list[int]:
    """Ids for generation: the conversation so far (ending with a user turn) + assistant marker.

    Generation stops at the EOT id (`special_token_ids(...).eot`).
    """
    if len(turns_so_far) % 2 != 1:
        raise ValueError("the conversation so far must end with a user turn (odd number of turns)")
    input_ids, _ = format_conversation(turns_so_far, tokenizer, spec, add_generation_prompt=True)
    return input_ids
