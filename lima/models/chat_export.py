"""The chat format written into every model folder lima-run produces, so tools outside lima-run
(`tokenizer.apply_chat_template` + `model.generate`, vLLM, TGI) prompt it as it was trained and stop
at its EOT.

A folder gets:

- a tokenizer whose `chat_template` renders exactly `lima.models.chat.format_conversation` (same
  BOS rule, same markers, no whitespace added) and whose `eos_token` is the EOT;
- `generation_config.json` that stops on the EOT and carries no sampling settings, replacing the
  base's one (which, for an instruct base, stops on its own end-of-turn);
- `lima_chat.json`, the chat tokens by name (read by lima-run's engines).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from lima.models import CHAT_FILE
from lima.models.chat import chat_token_texts, leading_bos, special_token_ids

NO_SYSTEM = "the LIMA chat format has user and assistant turns only, not "


def _quoted(text: str) -> str:
    """A Jinja string literal (JSON's double-quoted escapes are valid Jinja)."""
    return json.dumps(text)


def chat_template(tokenizer: Any, spec: Any) -> str:
    """A Jinja chat template rendering the LIMA format of `spec` for `tokenizer`."""
    user, assistant, eot = (_quoted(t) for t in chat_token_texts(spec))
    bos = leading_bos(tokenizer, spec)
    start = "{{ bos_token }}" if bos is not None else ""
    return (
        start + "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}"
        f"{{{{ {user} + message['content'] + {eot} }}}}"
        "{%- elif message['role'] == 'assistant' -%}"
        f"{{{{ {assistant} + message['content'] + {eot} }}}}"
        "{%- else -%}"
        f"{{{{ raise_exception({_quoted(NO_SYSTEM)} + message['role']) }}}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        f"{{%- if add_generation_prompt -%}}{{{{ {assistant} }}}}{{%- endif -%}}"
    )


def lima_generation_config(tokenizer: Any, spec: Any) -> Any:
    """Token ids only: stop on EOT, pad with the tokenizer's pad. No sampling settings: the base's
    (an instruct base may carry its own temperature or repetition penalty) must not follow the
    fine-tuned model around; callers choose theirs (lima-run's engines use the paper's)."""
    from transformers import GenerationConfig

    marks = special_token_ids(tokenizer, spec)
    pad = tokenizer.pad_token_id
    return GenerationConfig(
        bos_token_id=marks.bos,
        eos_token_id=marks.eot,
        pad_token_id=int(pad) if pad is not None else marks.eot,
    )


def write_chat_file(folder: Path, spec: Any) -> None:
    user, assistant, eot = chat_token_texts(spec)
    tokens = {"user_token": user, "assistant_token": assistant, "eot_token": eot}
    (Path(folder) / CHAT_FILE).write_text(json.dumps(tokens, indent=2) + "\n")


def save_chat_files(folder: Path, tokenizer: Any, spec: Any) -> None:
    """Write the tokenizer (LIMA chat template, EOT as EOS), generation_config.json and
    lima_chat.json into `folder` (after the weights were saved: it replaces their
    generation_config.json). `tokenizer` itself is left unchanged."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    exported = copy.deepcopy(tokenizer)
    exported.chat_template = chat_template(tokenizer, spec)
    exported.eos_token = chat_token_texts(spec)[2]
    exported.save_pretrained(folder)
    lima_generation_config(tokenizer, spec).save_pretrained(folder)
    write_chat_file(folder, spec)
