"""Baseline systems given as a model, prepared for the prompt format they are answered in.

`prompt_format: native` (the default) answers with the model's own chat template, or lima-run's
completion format when it has none (lima.generation.formats): the folder is used as it is. `tiny`
is the untrained base of the tiny preset, built exactly as the train stage builds it (same training
texts, same seed), i.e. "the model before fine-tuning"; its native template is LIMA's format.

`prompt_format: lima` prompts the base in the fine-tuned model's format: the chat tokens missing
from its tokenizer are added (EOT starting from the base's EOS row, lima.models.embeddings) and
the prepared copy, with the LIMA chat template and generation config, is cached under the scratch
folder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from lima.models import CHAT_FILE
from lima.models.load import add_special_tokens, resolve_base


def prepare_baseline(
    location: str,
    model_spec: Any,
    settings: Any,
    scratch: Path,
    texts: list[str],
    prompt_format: str = "native",
) -> Path:
    """A local folder `HFEngine` can load for the baseline model `location`."""
    own = model_spec.model_copy(update={"base": location, "tokenizer": None})
    folder = resolve_base(own, settings, scratch, texts if location == "tiny" else None)
    if prompt_format == "native" or _has_chat_tokens(folder, model_spec):
        return folder
    wanted = f"{model_spec.user_token}|{model_spec.assistant_token}|{model_spec.eot_token}"
    digest = hashlib.sha256(f"{folder.resolve()}|{wanted}".encode()).hexdigest()[:16]
    out = Path(scratch) / "baselines" / digest
    if not (out / CHAT_FILE).is_file():
        _add_chat_tokens(folder, model_spec, out)
    return out


def _has_chat_tokens(folder: Path, model_spec: Any) -> bool:
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(folder).get_vocab()
    wanted = {model_spec.user_token, model_spec.assistant_token, model_spec.eot_token}
    return wanted <= set(vocab) and (folder / CHAT_FILE).is_file()


def _add_chat_tokens(folder: Path, model_spec: Any, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lima.models.chat_export import save_chat_files

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(
        folder, trust_remote_code=model_spec.trust_remote_code
    )
    add_special_tokens(model, tokenizer, model_spec)
    model.save_pretrained(out)
    save_chat_files(out, tokenizer, model_spec)  # written last: its presence marks a done copy
