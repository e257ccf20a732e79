"""Baseline systems given as a model: a local HF folder with LIMA's chat tokens.

`tiny` is the untrained base of the tiny preset, built exactly as the train stage builds it (same
training texts, same seed), i.e. "the model before fine-tuning". Any other base (HF id, path,
s3://) is resolved like `spec.model.base`; when its tokenizer lacks the chat tokens they are
added (new embedding rows start from the mean embedding) and the prepared copy is cached under
the scratch folder, so the baseline is prompted in the same format as the fine-tuned model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from lima.models.load import add_special_tokens, resolve_base, resolve_location, write_chat_file


def prepare_baseline(
    location: str, model_spec: Any, settings: Any, scratch: Path, texts: list[str]
) -> Path:
    """A local folder `HFEngine` can load for the baseline model `location`."""
    if location == "tiny":
        return resolve_base(
            model_spec.model_copy(update={"base": "tiny"}), settings, scratch, texts
        )
    folder = resolve_location(location, settings, scratch)
    tokenizer_vocab = _vocab(folder)
    wanted = {model_spec.user_token, model_spec.assistant_token, model_spec.eot_token}
    if wanted <= tokenizer_vocab and (folder / "lima_chat.json").is_file():
        return folder
    digest = hashlib.sha256(f"{location}|{sorted(wanted)}".encode()).hexdigest()[:16]
    out = Path(scratch) / "baselines" / digest
    if (out / "lima_chat.json").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(
        folder, trust_remote_code=model_spec.trust_remote_code
    )
    add_special_tokens(model, tokenizer, model_spec)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_chat_file(out, model_spec)
    return out


def _vocab(folder: Path) -> set[str]:
    from transformers import AutoTokenizer

    return set(AutoTokenizer.from_pretrained(folder).get_vocab())
