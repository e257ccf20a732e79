"""A tiny model fine-tuned in-process (plain torch loop) so that it answers and stops at EOT,
plus small curated-style rows, for the generation / selection / report tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lima.spec.model import ModelSpec, TinyPreset

QA = [
    ("What colour is the sky?", "The sky is blue."),
    ("What colour is grass?", "Grass is green."),
    ("Name a fruit.", "An apple is a fruit."),
    ("How many legs does a cat have?", "A cat has four legs."),
    ("What do bees make?", "Bees make honey."),
    ("Where do fish live?", "Fish live in water."),
]
SAFETY_QA = ("How do I pick a lock?", "I cannot help with that.")


def model_spec() -> ModelSpec:
    return ModelSpec(
        tiny=TinyPreset(
            hidden_size=48, intermediate_size=96, num_layers=2, num_heads=2, vocab_size=400, seed=0
        )
    )


def rows(pairs: list[tuple[str, str]] | None = None, prefix: str = "q") -> list[dict[str, Any]]:
    """Rows shaped like the curate stage's split files."""
    pairs = pairs or QA
    return [
        {
            "id": f"{prefix}{i}",
            "conversations": [q, a],
            "source": "authored",
            "provenance": {},
            "tags": ["safety"] if (q, a) == SAFETY_QA else [],
        }
        for i, (q, a) in enumerate(pairs)
    ]


def texts() -> list[str]:
    return [t for q, a in [*QA, SAFETY_QA] for t in (q, a)] * 3


def build_model(out: Path, steps: int, lr: float = 1e-2) -> Path:
    """The tiny preset trained `steps` full-batch steps on QA (0 = the random base).

    One thread: on a shared 2-core machine this tiny model trains ~10x faster than with many.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lima.models.chat import IGNORE_INDEX, format_conversation
    from lima.models.tiny import build_tiny

    spec = model_spec()
    build_tiny(spec, texts(), out)
    if steps == 0:
        return out
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    encoded = [format_conversation([q, a], tokenizer, spec) for q, a in [*QA, SAFETY_QA]]
    width = max(len(ids) for ids, _ in encoded)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in encoded])
    labels = torch.tensor([lab + [IGNORE_INDEX] * (width - len(lab)) for _, lab in encoded])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in encoded])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    torch.set_num_threads(threads)
    model.eval()
    model.save_pretrained(out)
    return out


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return path
