"""The Ray Data actor pool: same answers as one engine, models fetched from the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_helpers import QA

from lima.generation.config import DecodeConfig
from lima.generation.hf_engine import HFEngine
from lima.generation.pool import ModelRef, answer_prompts
from lima.generation.prompt_sets import PromptRecord
from lima.spec import StageResources, StorageSpec
from lima.store import open_store

pytest_plugins = ["eval_fixtures"]  # the tuned_model / base_model fixtures


@pytest.mark.slow  # Ray Data actors + several tiny models: ~30-60 s on 2 shared cores
def test_pool_of_two_replicas_matches_one_engine_and_fetches_from_store(
    tuned_model: Path, settings, ray_local, tmp_path: Path
) -> None:
    prompts = [PromptRecord(f"q{i}", [q]) for i, (q, _) in enumerate(QA)]
    prompts.append(PromptRecord("mt", [QA[0][0], QA[3][0]]))
    config = DecodeConfig(max_new_tokens=16, batch_size=2)
    store = open_store(settings, StorageSpec())
    manifest = store.publish(
        "train", "k1", tuned_model, code_version="t", config={}, inputs=[], started_at="now"
    )
    # A path the replicas cannot see: they must fetch the model from the artifact store.
    ref = ModelRef("epoch-1", str(tmp_path / "not-here"), manifest.to_json(), "")
    seen: list[tuple[int, int]] = []
    throughput: dict[str, dict[str, float]] = {}
    pooled = answer_prompts(
        prompts,
        ref,
        config,
        StageResources(workers=2, cpus=1),
        settings=settings,
        storage=StorageSpec(),
        progress=lambda done, total: seen.append((done, total)),
        throughput=throughput,
    )
    assert [a["id"] for a in pooled] == [p.id for p in prompts]
    assert all(a["model"] == "epoch-1" and a["engine"] == "hf" for a in pooled)
    assert seen[-1] == (len(prompts), len(prompts))
    alone = HFEngine(tuned_model, config).answer(prompts)
    pooled_turns = [[t["answer"] for t in a["turns"]] for a in pooled]
    assert pooled_turns == [[t["answer"] for t in a["turns"]] for a in alone]
    assert len(pooled[-1]["turns"]) == 2
    assert all(t["finish_reason"] == "eot" for a in pooled[:-1] for t in a["turns"])
    # records are content only (hashed downstream); the time spent is reported beside them
    content = [{k: v for k, v in a.items() if k not in ("model", "engine")} for a in pooled]
    assert content == alone
    figures = throughput["epoch-1"]
    assert figures["answers"] == len(prompts) and figures["generate_s"] > 0
    assert figures["answer_tokens"] == sum(t["answer_tokens"] for a in alone for t in a["turns"])
