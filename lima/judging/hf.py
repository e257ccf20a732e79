"""A local Hugging Face causal LM as the judge's completer (GPU clusters; runs on CPU too).

Conversations go through the tokenizer's chat template (a plain `User:`/`Assistant:` layout
when the tokenizer has none), are generated greedily (the "temperature 0" of the endpoint
judge) in batches with left padding, and only the new tokens are decoded.
"""

from __future__ import annotations

import asyncio
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

from lima.errors import LimaError
from lima.judging.llm import Message


def _pretrained_args(location: str) -> dict[str, str]:
    """`from_pretrained` arguments for a folder / Hub id, a `.gguf` file (transformers
    de-quantizes GGUF weights into a regular model; the tokenizer comes from the same file), or
    a built-in model preset name such as `smollm2-135m` (lima.models.presets)."""
    from lima.models.presets import PRESETS, gguf_path

    if location in PRESETS:
        location = str(gguf_path(PRESETS[location]))
    path = Path(location)
    if path.suffix == ".gguf":
        return {"pretrained_model_name_or_path": str(path.parent), "gguf_file": path.name}
    return {"pretrained_model_name_or_path": location}


class HFCompleter:
    """Greedy batched chat generation with transformers."""

    def __init__(self, location: str, *, max_new_tokens: int = 1024, batch_size: int = 8) -> None:
        self.location = location
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self._lock = threading.Lock()  # one generate() at a time per model

    @cached_property
    def _loaded(self) -> tuple[Any, Any]:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        where = _pretrained_args(self.location)
        tokenizer = AutoTokenizer.from_pretrained(**where)
        tokenizer.padding_side = "left"  # decoder-only batching: prompts end where output starts
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise LimaError(f"judge model {self.location}: tokenizer has no pad or eos token")
            tokenizer.pad_token = tokenizer.eos_token
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(**where, dtype=dtype).to(device)
        model.eval()
        return tokenizer, model

    async def complete_many(self, conversations: list[list[Message]]) -> list[str | Exception]:
        return await asyncio.to_thread(self._complete_all, conversations)

    def _complete_all(self, conversations: list[list[Message]]) -> list[str | Exception]:
        out: list[str | Exception] = []
        for start in range(0, len(conversations), self.batch_size):
            out += self._batch(conversations[start : start + self.batch_size])
        return out

    def _batch(self, conversations: list[list[Message]]) -> list[str]:
        import torch

        tokenizer, model = self._loaded
        texts = [self._render(tokenizer, c) for c in conversations]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        # only what a causal LM takes (a BERT-style tokenizer adds token_type_ids)
        encoded = {k: encoded[k].to(model.device) for k in ("input_ids", "attention_mask")}
        with self._lock, torch.inference_mode():
            output = model.generate(
                **encoded,
                do_sample=False,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    @staticmethod
    def _render(tokenizer: Any, messages: list[Message]) -> str:
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n\n".join([*turns, "Assistant:"])
