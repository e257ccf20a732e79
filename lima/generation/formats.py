"""How each system is prompted, and where its answer ends.

- `lima`: lima-run's chat format (`lima.models.chat`), stopped at the EOT token. The fine-tuned
  model is always prompted this way, exactly as it was trained.
- `chat_template`: the model's own chat template (`tokenizer.apply_chat_template`, with the
  template's generation prompt), stopped at the model's own end tokens (its generation config's
  `eos_token_id` and the tokenizer's EOS). The default for a baseline with a template: an
  instruct model answers in the format it was tuned on, so "fine-tuned vs base" is fair.
- `completion`: a base model without a chat template sees a plain transcript

      Below is a conversation between a user and a helpful assistant.

      User: <turn 1>

      Assistant: <answer 1>

      User: <turn 2>

      Assistant:

  and its answer ends at its EOS or where it starts the next `User:` line. The prompt ends with
  `Assistant:` and no space, so a BPE model writes " The..." as it would in running text.

`resolve_format(requested, ...)` maps a baseline's `prompt_format` (`native` | `lima`) to one of
these; the resolved name is recorded with every answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lima.errors import StageError

LIMA, CHAT_TEMPLATE, COMPLETION = "lima", "chat_template", "completion"
COMPLETION_HEADER = "Below is a conversation between a user and a helpful assistant.\n\n"
COMPLETION_USER, COMPLETION_ASSISTANT = "User:", "Assistant:"
COMPLETION_STOP = "\n" + COMPLETION_USER
"""The completion format's end of an answer: the model starting the next user line."""


@dataclass
class PromptFormat:
    """Encodes a conversation so far (user, assistant, ..., user) into a generation prompt."""

    name: str
    tokenizer: Any
    stop_ids: list[int]
    stop_strings: list[str] = field(default_factory=list)
    spec: Any = None
    """The chat tokens (a ModelSpec) for the `lima` format."""

    def encode(self, turns: list[str]) -> list[int]:
        if len(turns) % 2 != 1:
            raise ValueError("the conversation so far must end with a user turn")
        if self.name == LIMA:
            from lima.models.chat import encode_prompt

            return encode_prompt(turns, self.tokenizer, self.spec)
        if self.name == CHAT_TEMPLATE:
            roles = ["user", "assistant"]
            messages = [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False
            )
            return [int(i) for i in ids]
        return list(self.tokenizer.encode(completion_text(turns), add_special_tokens=True))

    def answer_end(self, token_ids: list[int]) -> tuple[int, str] | None:
        """(tokens kept, answer text) when the answer ended within `token_ids`, else None.

        Kept tokens include the stop token or stop string; the text excludes both."""
        end = next((i for i, t in enumerate(token_ids) if t in self.stop_ids), None)
        body = token_ids if end is None else token_ids[:end]
        if self.stop_strings:
            text = self.tokenizer.decode(body, skip_special_tokens=True)
            cuts = [text.find(s) for s in self.stop_strings if s in text]
            if cuts:
                return _tokens_covering(self, body), text[: min(cuts)].strip()
        if end is None:
            return None
        return end + 1, self.text(body)

    def text(self, token_ids: list[int]) -> str:
        body = [t for t in token_ids if t not in self.stop_ids]
        return self.tokenizer.decode(body, skip_special_tokens=True).strip()


def _tokens_covering(fmt: PromptFormat, token_ids: list[int]) -> int:
    """Fewest leading tokens whose text contains a stop string (binary search: containment only
    grows as tokens are added)."""
    low, high = 1, len(token_ids)
    while low < high:
        middle = (low + high) // 2
        text = fmt.tokenizer.decode(token_ids[:middle], skip_special_tokens=True)
        if any(s in text for s in fmt.stop_strings):
            high = middle
        else:
            low = middle + 1
    return low


def completion_text(turns: list[str]) -> str:
    """The completion format's transcript of a conversation so far (ends with `Assistant:`)."""
    parts = [COMPLETION_HEADER]
    for index, text in enumerate(turns):
        speaker = COMPLETION_USER if index % 2 == 0 else COMPLETION_ASSISTANT
        parts.append(f"{speaker} {text.strip()}\n\n")
    parts.append(COMPLETION_ASSISTANT)
    return "".join(parts)


def _own_stop_ids(tokenizer: Any, generation_config: Any) -> list[int]:
    """The model's end tokens: its generation config's EOS id(s) and the tokenizer's EOS."""
    ids: list[int] = []
    config_eos = getattr(generation_config, "eos_token_id", None)
    for value in [config_eos, tokenizer.eos_token_id]:
        for token in value if isinstance(value, list) else [value]:
            if token is not None and int(token) not in ids:
                ids.append(int(token))
    return ids


def resolve_format(
    requested: str, model_dir: Path, tokenizer: Any, generation_config: Any = None
) -> PromptFormat:
    """The format a model folder is prompted in: `lima` (its `lima_chat.json` tokens, else the
    defaults) or `native` (its chat template if it has one, else the completion format)."""
    if requested == LIMA:
        return lima_format(model_dir, tokenizer)
    if requested != "native":
        raise StageError(f"unknown prompt format {requested!r} (expected native or lima)")
    stops = _own_stop_ids(tokenizer, generation_config)
    if not stops:
        raise StageError(f"model {model_dir} names no EOS token: its answers could never end")
    if getattr(tokenizer, "chat_template", None):
        return PromptFormat(CHAT_TEMPLATE, tokenizer, stops)
    return PromptFormat(COMPLETION, tokenizer, stops, [COMPLETION_STOP])


def lima_format(model_dir: Path, tokenizer: Any) -> PromptFormat:
    from lima.models.chat import special_token_ids
    from lima.models.load import read_chat_tokens
    from lima.spec.model import ModelSpec

    spec = ModelSpec(**read_chat_tokens(Path(model_dir)))
    try:
        eot = special_token_ids(tokenizer, spec).eot
    except StageError:
        raise StageError(
            f"model {model_dir} lacks the chat tokens of lima-run's format "
            f"({spec.user_token}, {spec.assistant_token}, {spec.eot_token}); prompt it with "
            "prompt_format: native, or prepare it with lima.generation.baselines"
        ) from None
    return PromptFormat(LIMA, tokenizer, [eot], spec=spec)
