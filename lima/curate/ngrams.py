"""Word n-grams of normalised text and the exact similarities built on them.

The decision of every dedup and decontamination test is taken on these exact set measures; MinHash
and the n-gram index only find the candidate pairs to measure.
"""

from __future__ import annotations

from lima.curate.text import _ASCII_PUNCT, normalise

Gram = tuple[str, ...]


def words(text: str) -> list[str]:
    """`normalise(text).split()`; ASCII text is split without joining it first."""
    if text.isascii():
        return text.lower().translate(_ASCII_PUNCT).split()
    return normalise(text).split()


def ngram_set(tokens: list[str], size: int) -> set[Gram]:
    """Every contiguous run of `size` words (empty when the text is shorter)."""
    if len(tokens) < size:
        return set()
    # zip over shifted views builds the tuples in C: several times faster than slicing in a loop.
    return set(zip(*(tokens[i:] for i in range(size)), strict=False))


def containment(part: set[Gram], whole: set[Gram]) -> float:
    """Share of `part`'s n-grams that also occur in `whole` (0 when `part` has none)."""
    return len(part & whole) / len(part) if part else 0.0


def jaccard(a: set[Gram], b: set[Gram]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def contains_phrase(tokens: list[str], phrase: list[str]) -> bool:
    """`phrase` occurs in `tokens` as a whole run of words (not inside a longer word)."""
    return f" {' '.join(phrase)} " in f" {' '.join(tokens)} "
