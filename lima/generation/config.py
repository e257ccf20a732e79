"""Decoding settings and per-prompt seeds (no torch import: stage modules stay light)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class DecodeConfig:
    """What one generation call needs; built from `spec.generate` by `from_spec`."""

    top_p: float = 0.9
    temperature: float = 0.7
    repetition_penalty: float = 1.2
    max_new_tokens: int = 2048
    seed: int = 0
    batch_size: int = 8
    do_sample: bool = True
    """False = greedy decoding (tests, debugging); the paper samples."""

    @classmethod
    def from_spec(cls, spec: Any, **overrides: Any) -> DecodeConfig:
        values = {
            "top_p": spec.top_p,
            "temperature": spec.temperature,
            "repetition_penalty": spec.repetition_penalty,
            "max_new_tokens": spec.max_new_tokens,
            "seed": spec.seed,
            "batch_size": spec.batch_size,
        }
        return cls(**{**values, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def seed_for(seed: int, prompt_id: str, turn: int = 0) -> int:
    """A stable 63-bit seed per (run seed, prompt, turn): independent of order and batching."""
    digest = hashlib.sha256(f"{seed}\x00{prompt_id}\x00{turn}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)
