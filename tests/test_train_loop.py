"""The real training loop (`lima.train.loop.Run`, DeepSpeed ZeRO-2 on CPU) in this process as a
one-rank group, without Ray: dropout mode and masks per layer and branch in every step of every
epoch (a resumed one too), eval without dropout, and bit-identical resumed weights."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from train_faults import Fault
from train_helpers import make_job

from lima.train.callbacks import LoopCallback

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def one_rank_group():
    import torch.distributed as dist

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@dataclass
class DropoutProbe(LoopCallback):
    """Records, for every forward pass through a residual-branch dropout, the epoch it ran in,
    whether it was a training pass (gradients on) or an evaluation (no_grad), whether the module
    was in train mode and the fraction of the branch output it zeroed."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    where: dict[str, Any] = field(default_factory=dict)

    def on_train_start(self, run: Any, resumed_after: int | None) -> None:
        from lima.train.dropout import BRANCHES, decoder_layers

        self.where = {"epoch": resumed_after}
        for index, layer in enumerate(decoder_layers(run.engine.module)):
            for _, name in BRANCHES:
                getattr(layer, name).register_forward_hook(self._record(index, name))

    def on_epoch_start(self, run: Any, epoch: int) -> None:
        self.where = {"epoch": epoch}

    def _record(self, layer: int, branch: str):
        def hook(module: Any, args: tuple, output: Any) -> None:
            import torch

            x = args[0]
            kept = output[x != 0]
            self.seen.append(
                {
                    **self.where,
                    "phase": "train" if torch.is_grad_enabled() else "eval",
                    "layer": layer,
                    "branch": branch,
                    "p": module.p,
                    "training": module.training,
                    "dropped": float((kept == 0).float().mean()),
                    "mask": (output == 0) & (x != 0),
                }
            )

        return hook


def _train(job) -> dict:
    from lima.train.launch import run_in_process_group

    return run_in_process_group(job)


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_dropout_on_in_every_step_and_resume_is_bit_identical(
    one_rank_group, settings, tmp_path: Path
) -> None:
    recipe = {
        "zero_stage": 2,
        "epochs": 2,
        "eligible_epochs": [2],
        "residual_dropout": 0.3,
        "rows": 24,
    }
    probe = DropoutProbe()
    straight = make_job(
        tmp_path / "a", settings, run_name="straight", callbacks=(probe,), workers=1, **recipe
    )
    _train(straight)

    train = [s for s in probe.seen if s["phase"] == "train"]
    assert {s["epoch"] for s in train} == {1, 2}
    assert all(s["training"] for s in train), "dropout must be on in every training step"
    for layer, p in enumerate([0.0, 0.3]):  # 2 layers: the ramp gives 0 at the bottom
        for branch in ("attn_residual_dropout", "mlp_residual_dropout"):
            mine = [s for s in train if (s["layer"], s["branch"]) == (layer, branch)]
            assert mine and all(s["p"] == pytest.approx(p) for s in mine)
            rates = [s["dropped"] for s in mine]
            assert sum(rates) / len(rates) == pytest.approx(p, abs=0.03), (layer, branch)
    top = [s for s in train if s["layer"] == 1]
    attn = [s["mask"] for s in top if s["branch"] == "attn_residual_dropout"]
    mlp = [s["mask"] for s in top if s["branch"] == "mlp_residual_dropout"]
    assert not attn[0].equal(mlp[0]), "each residual branch draws its own mask"
    assert not attn[0].equal(attn[1]), "a new mask every forward pass"
    evals = [s for s in probe.seen if s["phase"] == "eval"]
    assert evals and all(not s["training"] and s["dropped"] == 0.0 for s in evals), (
        "dev perplexity runs without dropout"
    )

    # The same key, crashed in epoch 2 and run again: resumes after epoch 1, dropout still on.
    crash = Fault("raise", rank=0, epoch=2, step=1, marker=str(tmp_path / "crashed"))
    again = make_job(
        tmp_path / "b", settings, run_name="resumed", callbacks=(crash,), workers=1, **recipe
    )
    with pytest.raises(RuntimeError, match="injected failure"):
        _train(again)
    probe = DropoutProbe()
    resumed = make_job(
        tmp_path / "b", settings, run_name="resumed", callbacks=(probe,), workers=1, **recipe
    )
    _train(resumed)
    steps = [s for s in probe.seen if s["phase"] == "train"]
    assert {s["epoch"] for s in steps} == {2}, "epoch 1 is not recomputed"
    assert all(s["training"] for s in steps), "dropout must be on after a resume"

    a, b = (
        _weights(tmp_path / "a" / "out" / "epoch-2"),
        _weights(tmp_path / "b" / "out" / "epoch-2"),
    )
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a), "resume changed the weights"
