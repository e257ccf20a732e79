"""Quotas, temperature sampling, k-center selection, held-out allocation and deduplication."""

from __future__ import annotations

import numpy as np

from lima.curate.dedup import Deduplicator, text_hash
from lima.curate.diversity import kcenter_greedy, largest_remainder, random_selection, site_quotas
from lima.curate.minhash import signature
from lima.curate.records import doc
from lima.curate.splits import held_out_counts
from lima.curate.stats import Stats, histogram
from lima.curate.tokens import count_tokens


def test_temperature_flattens_site_sizes():
    quotas = site_quotas({"big": 1000, "small": 10}, 20, tau=3.0)
    assert sum(quotas.values()) == 20
    # size^(1/3): 10 vs 2.15 -> about 16/4, where proportional sampling would give 20/0.
    assert quotas == {"big": 16, "small": 4}
    assert site_quotas({"big": 1000, "small": 2}, 20, tau=3.0)["small"] == 2  # capped by supply
    assert site_quotas({"a": 5}, 20, tau=3.0) == {"a": 5}


def test_largest_remainder_respects_caps():
    alloc = largest_remainder({"a": 1.0, "b": 1.0, "c": 1.0}, 10, {"a": 1, "b": 100, "c": 100})
    assert alloc["a"] == 1 and sum(alloc.values()) == 10


def test_held_out_never_takes_training_rows():
    counts = held_out_counts({"a": 10, "b": 50}, {"a": 10, "b": 20}, 12)
    assert counts == {"a": 0, "b": 12}
    # Only one row beyond the quotas: the held-out splits get one, the quotas stay whole.
    short = held_out_counts({"a": 10, "b": 21}, {"a": 10, "b": 20}, 5)
    assert short == {"a": 0, "b": 1}
    # A source smaller than its quota gives nothing to dev/test.
    assert held_out_counts({"a": 3}, {"a": 10}, 5) == {"a": 0}


def _clusters() -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:4]
    points = np.concatenate([c + rng.normal(0, 0.01, (10, 8)) for c in centres])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32), ["s"] * 40


def test_kcenter_covers_every_cluster_within_caps_and_budget():
    vectors, groups = _clusters()
    chosen, over = kcenter_greedy(vectors, groups, {"s": 4}, [10] * 40, budget=1000, seed=0)
    assert len(chosen) == 4 and over == 0
    assert sorted(i // 10 for i in chosen) == [0, 1, 2, 3]  # one pick per cluster
    chosen, over = kcenter_greedy(vectors, groups, {"s": 4}, [10] * 40, budget=25, seed=0)
    assert len(chosen) == 2 and over > 0
    assert kcenter_greedy(vectors, groups, {"s": 4}, [10] * 40, 1000, 0) == kcenter_greedy(
        vectors, groups, {"s": 4}, [10] * 40, 1000, 0
    )


def test_kcenter_per_group_caps():
    vectors, _ = _clusters()
    groups = ["a"] * 20 + ["b"] * 20
    chosen, _ = kcenter_greedy(vectors, groups, {"a": 1, "b": 3}, [1] * 40, 1000, seed=1)
    assert sorted(groups[i] for i in chosen) == ["a", "b", "b", "b"]
    chosen, _ = random_selection(groups, {"a": 2, "b": 0}, [1] * 40, 1000, seed=1)
    assert len(chosen) == 2 and all(groups[i] == "a" for i in chosen)


def test_exact_and_near_dedup():
    base = " ".join(f"word{i}" for i in range(200))
    near = base.replace("word100", "changed")
    items = [
        doc("x", "f", 1, ["Q one", base]),
        doc("x", "f", 2, ["q ONE!", base]),  # exact duplicate after normalisation
        doc("x", "f", 3, ["Another question", near]),  # near duplicate of the response
        doc("x", "f", 4, ["Unrelated", " ".join(f"other{i}" for i in range(200))]),
    ]
    for item in items:
        item.hash = text_hash("\n".join(item.conversations))
        item.minhash = signature(item.conversations[1], 5, 128)
    stats = Stats()
    out = list(Deduplicator(exact=True, near=True, threshold=0.7, num_perm=128)(items, stats))
    assert [getattr(i, "rule", None) for i in out] == [
        None,
        "exact_duplicate",
        "near_duplicate",
        None,
    ]
    assert stats.dropped["x"] == {"exact_duplicate": 1, "near_duplicate": 1}
    # Each removal names the kept copy and the measured similarity, after the common fields.
    first, second = out[1].to_json(), out[2].to_json()
    assert list(first)[-2:] == ["collided_with", "similarity"]
    assert first["collided_with"] == {"source": "x", "file": "f", "row": "1"}
    assert first["similarity"] == {"metric": "normalised_text", "value": 1.0}
    assert second["collided_with"]["row"] == "1"
    assert second["similarity"]["metric"] == "jaccard"
    assert 0.7 <= second["similarity"]["value"] < 1


def test_token_counts_and_histogram():
    assert count_tokens(["hello world", ""]) == [2, 0]
    assert histogram([0, 5, 10, 99], [0, 10, 50]) == {"0-10": 2, "10-50": 1, ">=50": 1}


def test_candidate_pool_is_subsampled_per_group():
    from lima.curate.assemble import _subsample
    from lima.spec.data import DataSpec

    spec = DataSpec.model_validate(
        {
            "sources": [{"name": "a", "kind": "authored", "uri": "x", "quota": 2}],
            "selection": {"candidates_per_slot": 3},
        }
    )
    docs = [doc("a", "f", i, ["q", "r"]) for i in range(20)] + [doc("b", "f", 99, ["q", "r"])]
    groups = ["a"] * 20 + ["b"]
    kept, kept_groups, dropped = _subsample(spec, docs, groups, {"a": 2, "b": 1})
    assert kept_groups.count("a") == 6 and kept_groups.count("b") == 1
    assert len(dropped) == 14 and _subsample(spec, docs, groups, {"a": 2, "b": 1})[0] == kept
