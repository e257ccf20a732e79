"""Per-step statistics under an NCCL-like process group, on CPU.

NCCL takes only CUDA tensors: a collective on a CPU tensor fails with "No backend type
associated with device type cpu". A gloo backend bound to `cuda` only (`"cuda:gloo"`) has the
same rule, so two CPU processes reproduce what Ray Train's NCCL group does on GPU workers. The
training loop's statistics (step losses, token counts, dev perplexity) must work there.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

pytestmark = pytest.mark.timeout(400)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, port: int, tiny_dir: str, out: str) -> None:
    import json

    import torch
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM

    from lima.train.collectives import StatsReducer
    from lima.train.data import Example
    from lima.train.loop import dev_perplexity

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("cuda:gloo", rank=rank, world_size=2)
    result = {}
    try:
        dist.all_reduce(torch.ones(1))  # what the loop did before: a CPU tensor, default group
    except RuntimeError as error:
        result["cpu_collective_error"] = str(error)
    reducer = StatsReducer()
    result["sum"] = reducer.sum([1.0 + rank, 10.0])
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    model.train()
    dev = [Example([1, 5 + rank, 7, 9], [-100, 5 + rank, 7, 9]) for _ in range(3)]
    result["perplexity"] = dev_perplexity(model, dev, 2, 0, reducer, rank, 2)
    result["training_after"] = model.training
    Path(out, f"rank-{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def test_statistics_work_on_a_cuda_only_process_group(tmp_path: Path) -> None:
    import json

    import torch.multiprocessing as mp
    from train_helpers import conversations, tiny_model_spec

    from lima.models.tiny import build_tiny

    texts = [t for row in conversations(20) for t in row["conversations"]]
    tiny = build_tiny(tiny_model_spec(), texts, tmp_path / "tiny")
    mp.spawn(_rank, args=(_free_port(), str(tiny), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(2)]
    for result in results:
        # The stand-in enforces NCCL's rule ...
        assert "No backend type associated with device type cpu" in result["cpu_collective_error"]
        # ... and the loop's statistics still add up over both ranks.
        assert result["sum"] == [3.0, 20.0]
        assert result["perplexity"] is not None and result["perplexity"] > 1.0
        assert result["training_after"] is True, "dev perplexity restores train mode"
    assert results[0]["perplexity"] == results[1]["perplexity"]
