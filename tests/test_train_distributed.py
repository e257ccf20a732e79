"""Real DeepSpeed ZeRO-2/3 with 2 Ray Train workers on CPU on the tiny preset."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from train_faults import Fault, Trace, ship_by_value
from train_helpers import make_job

from lima.errors import StageError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _epochs(out: Path) -> list[dict]:
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == "epoch"]


def _assert_trained(out: Path, epochs: int, lr: float, final_lr: float) -> None:
    """Every epoch recorded, loss and dev perplexity down, LR schedule end points, throughput."""
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    ends = [r for r in records if r["kind"] == "epoch"]
    assert [e["epoch"] for e in ends] == list(range(1, epochs + 1))
    assert ends[-1]["loss"] < ends[0]["loss"] - 0.3, "loss must go down"
    assert ends[-1]["dev_perplexity"] < ends[0]["dev_perplexity"]
    steps = [r for r in records if r["kind"] == "step"]
    assert steps[0]["lr"] == pytest.approx(lr)
    assert steps[-1]["lr"] == pytest.approx(final_lr)
    assert all(s["tokens_per_s"] > 0 and s["non_padding_fraction"] > 0.8 for s in steps)


def _assert_model_usable(folder: Path) -> None:
    import torch

    from lima.models.chat import encode_prompt
    from lima.models.load import load_for_inference

    model, tokenizer, eot = load_for_inference(folder)
    ids = torch.tensor([encode_prompt(["What colour is the sky?"], tokenizer, model_spec())])
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()
    assert tokenizer.convert_ids_to_tokens(eot) == "<|eot|>"
    # the exported folder prompts and stops as trained outside lima-run (lima.models.chat_export)
    message = [{"role": "user", "content": "What colour is the sky?"}]
    templated = tokenizer.apply_chat_template(
        message, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    assert templated == ids[0].tolist()
    assert model.generation_config.eos_token_id == eot == tokenizer.eos_token_id


def model_spec():
    from train_helpers import tiny_model_spec

    return tiny_model_spec()


def test_zero3_stage_checkpoints_to_s3(ray_local, s3_settings, tmp_path: Path) -> None:
    """The train stage itself (runner.execute) with ZeRO-3, checkpoints in the moto S3 server."""
    from train_helpers import conversations, stage_experiment

    from lima.dag import get as get_stage
    from lima.runner import execute
    from lima.store import now_iso, open_store, s3_backend
    from lima.train import layout

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
    notes: list[str] = []
    manifest = execute(
        experiment,
        stage,
        {"curate": curate},
        store,
        s3_settings,
        lambda **update: notes.append(update.get("note") or ""),
        run_id="20260101T000000-abcdef",
    )
    assert any("checkpointed" in note for note in notes)  # per-epoch progress while fit() runs
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
    _assert_trained(out, 3, lr=3e-3, final_lr=3e-4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["non_padding_fraction"] > summary["non_padding_fraction_unsorted"]
    assert "line" in (out / "rejected.jsonl").read_text()
    # One folder per run under the key's folder (lima.train.layout.run_folder).
    run = f"lima/train-runs/{layout.run_folder(manifest.key, '20260101T000000-abcdef')}/"
    keys = set(s3_backend(s3_settings, "lima").list(run))
    assert f"{run}epoch-003/{layout.digest_file(1)}" in keys
    for epoch in (1, 2, 3):
        prefix = f"{run}epoch-{epoch:03d}/"
        assert f"{prefix}state.json" in keys
        assert {f"{prefix}done/rank-0", f"{prefix}done/rank-1"} <= keys
        shards = any(k.startswith(f"{prefix}ds/epoch-{epoch:03d}/zero_pp_rank_1") for k in keys)
        # Retention (train.keep_full_states, default 2): only the last two full states stay.
        assert shards == (epoch >= 2), (epoch, shards)
    assert f"{run}epoch-003/hf/model.safetensors" in keys
    _assert_model_usable(out / "epoch-3")


def test_zero2_resumes_after_killed_worker_then_stops_on_divergence(
    ray_local, settings, tmp_path: Path
) -> None:
    """ZeRO-2: rank 1's process is SIGKILLed mid-epoch 2 (first attempt only); the run resumes
    from epoch 1's checkpoint without recomputing it, trains epoch 2 (loss down, consolidated
    model), then a NaN loss injected on rank 1 in epoch 3 stops every rank with a clear error
    that keeps epoch 2 as the last good checkpoint. The resumed epoch-2 weights are
    bit-identical to those of an uninterrupted run of the same recipe."""
    from lima.train import checkpoint as ckpt

    ship_by_value()
    trace = tmp_path / "trace.txt"
    callbacks = (
        Trace(str(trace)),
        Fault("kill", rank=1, epoch=2, step=1, marker=str(tmp_path / "killed")),
        Fault("nan", rank=1, epoch=3, step=0, marker=str(tmp_path / "nan")),
    )
    recipe = {"zero_stage": 2, "epochs": 3, "eligible_epochs": [2], "keep_full_states": 1}
    job = make_job(tmp_path, settings, run_name="resume", callbacks=callbacks, **recipe)
    with pytest.raises(StageError, match="diverged") as info:
        run(job)
    assert (tmp_path / "killed").exists(), "the worker was never killed"
    # Epoch 1 completed before the kill and is never recomputed; epoch 2 restarts from its start.
    assert trace.read_text().splitlines() == [
        "start 1",
        "start 2",
        "resume after 1",
        "start 2",
        "start 3",
    ]
    message = str(info.value)
    assert "(loss nan) at epoch 3 step 9" in message
    assert "last good checkpoint kept at" in message and "(epoch 2)" in message
    assert not (job.output_dir / "summary.json").exists()

    key_dir = settings.artifacts_dir.resolve() / "lima" / "train-runs" / "resume"
    (run_dir,) = [p for p in key_dir.iterdir() if p.is_dir()]  # this run's own folder
    assert ckpt.is_complete(run_dir / "epoch-001") and ckpt.is_complete(run_dir / "epoch-002")
    assert not (run_dir / "epoch-003").exists()
    # keep_full_states: 1 -> epoch 1's shards were dropped once epoch 2 was complete.
    assert not (run_dir / "epoch-001" / "ds").exists() and (run_dir / "epoch-002" / "ds").is_dir()
    epochs = _epochs(run_dir / "epoch-002")
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[1]["loss"] < epochs[0]["loss"] - 0.2, "loss must go down"
    assert epochs[1]["dev_perplexity"] < epochs[0]["dev_perplexity"]
    assert not (run_dir / "epoch-001" / "hf").exists()
    _assert_model_usable(run_dir / "epoch-002" / "hf")

    straight = make_job(tmp_path / "straight", settings, run_name="straight", **recipe)
    run(straight)
    resumed_weights = _weights(run_dir / "epoch-002" / "hf")
    straight_weights = _weights(straight.output_dir / "epoch-2")
    assert resumed_weights.keys() == straight_weights.keys()
    assert all(resumed_weights[k].equal(straight_weights[k]) for k in resumed_weights)


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def run(job):
    from lima.train.launch import run_training

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
    ship_by_value()
    trace = tmp_path / "trace.txt"
    job = make_job(
        tmp_path,
        settings,
        zero_stage=2,
        epochs=2,
        run_name="nostore",
        rows=16,
        callbacks=(Trace(str(trace)),),
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
    assert "checkpoint storage unavailable" in message, message
    assert (
        "secret" not in message.lower()
        and s3_settings.s3_secret_key.get_secret_value() not in message
    )
    assert not (job.output_dir / "summary.json").exists()
