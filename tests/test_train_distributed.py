"""Real DeepSpeed ZeRO-2/3 with 2 Ray Train workers on CPU on the tiny preset."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from train_helpers import make_job

from lima.errors import StageError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _epochs(out: Path) -> list[dict]:
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == "epoch"]


def _assert_trained(summary: dict, job) -> None:
    epochs = _epochs(job.output_dir)
    assert [e["epoch"] for e in epochs] == list(range(1, job.train.epochs + 1))
    assert epochs[-1]["loss"] < epochs[0]["loss"] - 0.3, "loss must go down"
    assert epochs[-1]["dev_perplexity"] < epochs[0]["dev_perplexity"]
    assert summary["non_padding_fraction"] > 0.9
    steps = [
        r
        for r in (
            json.loads(x) for x in (job.output_dir / "metrics.jsonl").read_text().splitlines()
        )
        if r["kind"] == "step"
    ]
    assert steps[0]["lr"] == pytest.approx(job.train.lr)
    assert steps[-1]["lr"] == pytest.approx(job.train.final_lr)
    assert all(s["tokens_per_s"] > 0 for s in steps)


def _assert_model_usable(folder: Path) -> None:
    import torch

    from lima.models.chat import encode_prompt
    from lima.models.load import load_for_inference

    model, tokenizer, eot = load_for_inference(folder)
    ids = torch.tensor([encode_prompt(["What colour is the sky?"], tokenizer, model_spec())])
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()
    assert tokenizer.convert_ids_to_tokens(eot) == "<|eot|>"


def model_spec():
    from train_helpers import tiny_model_spec

    return tiny_model_spec()


def test_zero3_stage_checkpoints_to_s3(ray_local, s3_settings, tmp_path: Path) -> None:
    """The train stage itself (runner.execute) with ZeRO-3, checkpoints in the moto S3 server."""
    from train_helpers import conversations, stage_experiment

    from lima.runner import execute
    from lima.stages import get_stage
    from lima.store import now_iso, open_store, s3_backend

    experiment = stage_experiment(zero_stage=3, epochs=3)
    store = open_store(s3_settings, experiment.spec.storage)
    curated = tmp_path / "curated"
    curated.mkdir()
    for name, rows in (("train.jsonl", conversations(32)), ("dev.jsonl", conversations(8, 99))):
        (curated / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (curated / "train.jsonl").open("a").write("not json\n")  # rejected with its line, not fatal
    curate = store.publish(
        "curate",
        "test-curate",
        curated,
        code_version="test",
        config={},
        inputs=[],
        started_at=now_iso(),
    )
    stage = get_stage("train")
    manifest = execute(experiment, stage, {"curate": curate}, store, s3_settings, lambda **_: None)
    paths = {o.path for o in manifest.objects}
    assert {
        "epoch-3/config.json",
        "epoch-3/model.safetensors",
        "epoch-3/tokenizer.json",
        "epoch-3/lima_chat.json",
        "metrics.jsonl",
        "summary.json",
        "rejected.jsonl",
    } <= paths
    assert not any(p.startswith(("epoch-1/", "epoch-2/")) for p in paths)  # not eligible
    out = tmp_path / "artifact"
    store.fetch(manifest, out)
    epochs = _epochs(out)
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert epochs[-1]["loss"] < epochs[0]["loss"] - 0.3, "loss must go down"
    assert "line" in (out / "rejected.jsonl").read_text()
    run = f"lima/train-runs/train-{manifest.key[:16]}/"
    keys = set(s3_backend(s3_settings, "lima").list(run))
    for epoch in (1, 2, 3):
        prefix = f"{run}epoch-{epoch:03d}/"
        assert f"{prefix}state.json" in keys
        assert {f"{prefix}done/rank-0", f"{prefix}done/rank-1"} <= keys
        assert any(k.startswith(f"{prefix}ds/epoch-{epoch:03d}/zero_pp_rank_1") for k in keys)
    assert f"{run}epoch-003/hf/model.safetensors" in keys
    _assert_model_usable(out / "epoch-3")


def test_zero2_resumes_after_killed_worker(ray_local, settings, tmp_path: Path) -> None:
    """ZeRO-2 run whose rank-1 process is SIGKILLed mid-epoch 2 on the first attempt only."""
    trace = tmp_path / "trace.txt"
    fault = {
        "rank": 1,
        "epoch": 2,
        "step": 1,
        "marker": str(tmp_path / "killed"),
        "trace": str(trace),
    }
    job = make_job(tmp_path, settings, zero_stage=2, epochs=3, run_name="resume", fault=fault)
    summary = run(job)
    assert (tmp_path / "killed").exists(), "the worker was never killed"
    # Epoch 1 completed before the kill and is never recomputed; epoch 2 restarts from its start.
    assert trace.read_text().splitlines() == [
        "start 1",
        "start 2",
        "resume after 1",
        "start 2",
        "start 3",
    ]
    assert [e["epoch"] for e in _epochs(job.output_dir)] == [1, 2, 3]
    assert [e["model"] for e in summary["epochs"]] == [None, None, "epoch-3"]
    _assert_trained(summary, job)
    _assert_model_usable(job.output_dir / "epoch-3")


def test_divergence_stops_with_clear_error(ray_local, settings, tmp_path: Path) -> None:
    """A NaN loss in epoch 2 (injected on rank 1) stops every rank; epoch 1 stays the good one."""
    fault = {"kind": "nan", "rank": 1, "epoch": 2, "step": 0, "marker": str(tmp_path / "nan")}
    job = make_job(
        tmp_path, settings, zero_stage=2, epochs=2, run_name="diverge", rows=16, fault=fault
    )
    with pytest.raises(StageError, match="diverged") as info:
        run(job)
    assert "loss nan at epoch 2 step 3" in str(info.value)
    assert "last good checkpoint" in str(info.value) and "(epoch 1)" in str(info.value)
    assert not (job.output_dir / "summary.json").exists()


def run(job):
    from lima.train.driver import run_training

    return run_training(job)


def test_storage_down_at_checkpoint_fails_clearly(ray_local, s3_settings, tmp_path: Path) -> None:
    """The S3 endpoint disappears during epoch 1: the checkpoint upload fails, the stage fails
    with a clear message and no checkpoint is left registered as complete."""
    import threading
    import time

    from moto.server import ThreadedMotoServer

    # Our own server (the fixture's one is only used for its credentials layout).
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    settings = s3_settings.model_copy(update={"s3_endpoint": f"{host}:{port}"})
    trace = tmp_path / "trace.txt"
    fault = {
        "rank": -1,
        "epoch": 0,
        "step": 0,
        "marker": str(tmp_path / "unused"),
        "trace": str(trace),
    }
    job = make_job(
        tmp_path,
        settings,
        zero_stage=2,
        epochs=2,
        run_name="nostore",
        rows=16,
        fault=fault,
        max_failures=0,
    )

    def stop_when_training() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (
            trace.exists() and "start 1" in trace.read_text()
        ):
            time.sleep(0.2)
        server.stop()

    watcher = threading.Thread(target=stop_when_training, daemon=True)
    watcher.start()
    try:
        with pytest.raises(StageError, match="training failed after retries") as info:
            run(job)
    finally:
        watcher.join(timeout=5)
    message = str(info.value)
    assert (
        "secret" not in message.lower()
        and s3_settings.s3_secret_key.get_secret_value() not in message
    )
    assert not (job.output_dir / "summary.json").exists()
