"""Fast tests of the training building blocks: chat mask, dropout ramp, LR, EOT resize, batching."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from train_helpers import conversations, tiny_model_spec

from lima.errors import SourceError, StageError
from lima.models.chat import IGNORE_INDEX, encode_prompt, format_conversation, special_token_ids
from lima.spec.model import ModelSpec
from lima.spec.train import TrainSpec


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lima.models.tiny import build_tiny

    texts = [t for row in conversations(40) for t in row["conversations"]]
    return build_tiny(tiny_model_spec(), texts, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tokenizer(tiny_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir)


# ---- chat format and loss mask -------------------------------------------------------------


def _spans(ids: list[int], labels: list[int], tokenizer, spec) -> tuple[list[list[int]], list[int]]:
    """Assistant bodies (content + EOT) found by walking the markers, and the label positions."""
    marks = special_token_ids(tokenizer, spec)
    bodies, current, role = [], None, None
    for token in ids:
        if token in (marks.user, marks.assistant):
            role, current = token, []
            continue
        if current is not None:
            current.append(token)
            if token == marks.eot:
                if role == marks.assistant:
                    bodies.append(current)
                current = None
    supervised = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
    return bodies, supervised


def test_mask_covers_only_assistant_tokens_and_eot(tokenizer) -> None:
    spec = tiny_model_spec()
    turns = ["What colour is the sky?", "The sky is blue."]
    ids, labels = format_conversation(turns, tokenizer, spec)
    marks = special_token_ids(tokenizer, spec)
    assert len(ids) == len(labels)
    supervised = [ids[i] for i, label in enumerate(labels) if label != IGNORE_INDEX]
    assert supervised, "mask must not be empty"
    assert supervised == [
        *tokenizer.encode("The sky is blue.", add_special_tokens=False),
        marks.eot,
    ]
    assert all(labels[i] in (IGNORE_INDEX, ids[i]) for i in range(len(ids)))
    user_body = tokenizer.encode("What colour is the sky?", add_special_tokens=False)
    first_assistant = ids.index(marks.assistant)
    assert all(label == IGNORE_INDEX for label in labels[: first_assistant + 1])
    assert marks.bos is None  # the tiny tokenizer never starts text with BOS itself
    assert ids[: 1 + len(user_body) + 1] == [marks.user, *user_body, marks.eot]


def test_mask_multi_turn_supervises_every_assistant_turn(tokenizer) -> None:
    spec = tiny_model_spec()
    turns = ["Hi there", "Hello, how can I help?", "Name a colour", "Green."]
    ids, labels = format_conversation(turns, tokenizer, spec)
    bodies, supervised = _spans(ids, labels, tokenizer, spec)
    assert len(bodies) == 2
    expected = [
        [*tokenizer.encode(t, add_special_tokens=False), special_token_ids(tokenizer, spec).eot]
        for t in turns[1::2]
    ]
    assert bodies == expected
    assert [ids[i] for i in supervised] == expected[0] + expected[1]
    eots = [i for i, t in enumerate(ids) if t == special_token_ids(tokenizer, spec).eot]
    assert len(eots) == 4  # every utterance ends with EOT
    assert [labels[i] != IGNORE_INDEX for i in eots] == [False, True, False, True]


def test_encode_prompt_ends_with_assistant_marker(tokenizer) -> None:
    spec = tiny_model_spec()
    ids = encode_prompt(["Tell me a joke"], tokenizer, spec)
    assert ids[-1] == special_token_ids(tokenizer, spec).assistant
    assert ids[0] == special_token_ids(tokenizer, spec).user  # no BOS: see lima.models.chat
    with pytest.raises(ValueError):
        encode_prompt(["a", "b"], tokenizer, spec)


def test_truncation_is_counted_and_empty_masks_dropped(tokenizer) -> None:
    from lima.models.chat import special_token_ids
    from lima.train.data import encode_rows, truncation_warning

    spec = tiny_model_spec()
    long_user = {"id": "long-user", "conversations": ["word " * 200, "short answer"]}
    long_answer = {"id": "long-answer", "conversations": ["q", "answer " * 200]}
    examples, stats = encode_rows([long_user, long_answer], tokenizer, spec, context_length=32)
    assert stats.truncated == 2
    assert [d["id"] for d in stats.dropped] == ["long-user"]
    assert len(examples) == 1 and len(examples[0]) == 32
    eot = special_token_ids(tokenizer, spec).eot
    assert eot not in examples[0].labels  # a cut answer has no EOT to learn from...
    warning = truncation_warning(stats.truncated, stats.rows, 32)
    assert warning.startswith("2 of 2 training conversations are longer than context_length 32")
    assert "not to stop" in warning  # ...which the train stage says, with the numbers
    short = {"id": "short", "conversations": ["q", "a"]}
    assert truncation_warning(encode_rows([short], tokenizer, spec, 32)[1].truncated, 1, 32) is None


def test_bad_rows_are_rejected_with_reason(tmp_path: Path) -> None:
    from lima.train.data import read_conversations

    path = tmp_path / "train.jsonl"
    path.write_text(
        '{"id": "a", "conversations": ["q", "a"]}\nnot json\n{"id": "b", "conversations": ["q"]}\n'
    )
    rows, rejected = read_conversations(path)
    assert [r["id"] for r in rows] == ["a"]
    assert [r["line"] for r in rejected] == [2, 3]
    assert "conversations" in rejected[1]["reason"]


# ---- residual dropout ramp ---------------------------------------------------------------


def test_residual_dropout_ramp_per_layer_and_off_in_eval(tiny_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from lima.train.dropout import add_residual_dropout, ramp

    assert ramp(0.3, 4) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    ps = add_residual_dropout(model, 0.2)
    layers = model.model.layers
    assert [layer.residual_dropout_p for layer in layers] == pytest.approx(
        [0.2 * i / (len(layers) - 1) for i in range(len(layers))]
    )
    assert [layer.mlp_residual_dropout.p for layer in layers] == pytest.approx(ps)
    ids = torch.randint(5, 100, (2, 16))
    model.eval()
    with torch.no_grad():
        a, b = model(ids).logits, model(ids).logits
    assert torch.equal(a, b), "eval mode must be deterministic (no dropout)"
    model.train()
    with torch.no_grad():
        c, d = model(ids).logits, model(ids).logits
    assert not torch.equal(c, d), "train mode must drop"
    assert ps[0] == 0.0 and ps[-1] == pytest.approx(0.2)


def test_residual_dropout_acts_on_each_branch_before_the_residual_add(tiny_dir: Path) -> None:
    """Attention and MLP outputs are each dropped (rate p) before being added to the stream;
    the stream itself (the residual) is never dropped."""
    import torch
    from transformers import AutoModelForCausalLM

    from lima.train.dropout import add_residual_dropout

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    add_residual_dropout(model, 0.5)
    top = model.model.layers[-1]
    seen = {}

    def keep(name):
        def hook(module, args, output):
            seen[name] = (output[0] if isinstance(output, tuple) else output).detach()

        return hook

    top.self_attn.register_forward_hook(keep("attn"))
    top.mlp.register_forward_hook(keep("mlp"))
    top.register_forward_hook(keep("layer"))
    top.register_forward_pre_hook(
        lambda m, a, kw: seen.update(x=(a[0] if a else kw["hidden_states"]).detach()),
        with_kwargs=True,
    )
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        model(torch.randint(5, 100, (4, 64)))
    for branch in ("attn", "mlp"):
        zeros = float((seen[branch] == 0).float().mean())
        assert zeros == pytest.approx(0.5, abs=0.05), branch
    # out = x + drop(attn) + drop(mlp(...)): where both branches were dropped, out == x.
    both = (seen["attn"] == 0) & (seen["mlp"] == 0)
    assert torch.allclose(seen["layer"][both], seen["x"][both])


# ---- learning-rate schedule --------------------------------------------------------------


def test_linear_lr_start_middle_end() -> None:
    from lima.train.schedule import linear_lr

    total = 11
    assert linear_lr(0, total, 1e-5, 1e-6) == pytest.approx(1e-5)
    assert linear_lr(5, total, 1e-5, 1e-6) == pytest.approx(5.5e-6)
    assert linear_lr(10, total, 1e-5, 1e-6) == pytest.approx(1e-6)
    assert linear_lr(1, 2, 1e-5, 1e-6) == pytest.approx(1e-6)


# ---- DeepSpeed config ----------------------------------------------------------------------


def test_ds_config_accumulation_and_divisibility() -> None:
    from lima.train.ds_config import build_ds_config

    spec = TrainSpec(global_batch_size=32, micro_batch_size=2, zero_stage=3)
    config = build_ds_config(spec, workers=4, use_gpu=False)
    assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert config["gradient_accumulation_steps"] == 4
    assert config["zero_optimization"]["stage"] == 3
    assert config["bf16"]["enabled"] is False
    assert config["optimizer"]["params"]["betas"] == [0.9, 0.95]
    assert config["optimizer"]["params"]["weight_decay"] == 0.1
    assert build_ds_config(spec, 4, use_gpu=True)["bf16"]["enabled"] is True
    with pytest.raises(StageError, match="not divisible"):
        build_ds_config(
            TrainSpec(global_batch_size=32, micro_batch_size=3), workers=2, use_gpu=False
        )


# ---- batching -----------------------------------------------------------------------------


def test_length_grouping_keeps_padding_small_and_plans_equal_passes() -> None:
    import random

    from lima.train.batching import micro_batches, non_padding_fraction, plan_epoch

    rng = random.Random(1)
    lengths = [int(rng.lognormvariate(5.5, 0.8)) + 10 for _ in range(1000)]
    grouped = micro_batches(lengths, 4, seed=0, epoch=1)
    naive = micro_batches(lengths, 4, seed=0, epoch=1, grouped=False)
    assert sorted(i for b in grouped for i in b) == list(range(1000))
    assert non_padding_fraction(grouped, lengths) > 0.95 > non_padding_fraction(naive, lengths)
    plan = plan_epoch(lengths[:37], micro=2, accumulation=2, workers=2, seed=0, epoch=1)
    assert plan.steps == 5 and plan.real == [4, 4, 4, 4, 3]
    assert all(len(step) == 2 for rank in plan.per_rank for step in rank), "equal passes"
    seen = [i for rank in plan.per_rank for step in rank for mb in step for i in mb]
    assert sorted(seen) == list(range(37)), "every example exactly once per epoch"
    fillers = [mb for rank in plan.per_rank for mb in rank[-1] if not mb]
    assert len(fillers) == 1 and plan.filler
    assert plan.weight(4) == pytest.approx(4 / 3) and plan.weight(0) == 1.0
    assert plan_epoch(lengths[:37], micro=2, accumulation=2, workers=2, seed=0, epoch=2) != plan


def test_filler_passes_leave_the_step_gradient_the_mean_of_real_micro_batches() -> None:
    """DeepSpeed averages a step's gradient over all its slots (accumulation x workers); with
    the plan's weights (slots/real on real micro-batches, 0 on fillers) the result is the mean
    over the real micro-batches, as in a full step."""
    import torch

    from lima.train.batching import plan_epoch

    plan = plan_epoch([5] * 7, micro=1, accumulation=2, workers=2, seed=0, epoch=1)
    losses = {i: torch.tensor(float(i + 1), requires_grad=True) for i in range(7)}
    last = plan.steps - 1
    total = 0.0
    for rank in plan.per_rank:
        for micro in rank[last]:
            loss = losses[micro[0]] if micro else losses[plan.filler[0]]
            weight = plan.weight(last) if micro else 0.0
            total = total + loss * weight / plan.slots  # DeepSpeed: / accumulation, / world
    total.backward()
    real = [mb[0] for rank in plan.per_rank for mb in rank[last] if mb]
    for index, loss in losses.items():
        expected = 1 / len(real) if index in real else 0.0
        assert float(loss.grad or 0.0) == pytest.approx(expected)


def test_collate_masks_padding() -> None:
    from lima.train.batching import collate
    from lima.train.data import Example

    batch = collate([Example([1, 2, 3], [-100, 2, 3]), Example([1, 2], [-100, 2])], pad_id=0)
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist()[1] == [-100, 2, -100]


# ---- models: tiny preset, EOT resize, offline -------------------------------------------


def test_tiny_is_deterministic(tmp_path: Path, tiny_dir: Path) -> None:
    from lima.models.tiny import build_tiny

    texts = [t for row in conversations(40) for t in row["conversations"]]
    again = build_tiny(tiny_model_spec(), texts, tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_dir / name).read_bytes(), name


def test_eot_added_from_the_eos_embedding(tiny_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lima.models.load import add_special_tokens

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    spec = ModelSpec(eot_token="<|end_of_turn|>", user_token="<|human|>", assistant_token="<|bot|>")
    added = add_special_tokens(model, tokenizer, spec)
    assert added == ["<|human|>", "<|bot|>", "<|end_of_turn|>"]
    rows = old_in.shape[0]
    new_in = model.get_input_embeddings().weight
    new_out = model.get_output_embeddings().weight
    assert new_in.shape[0] == new_out.shape[0] == rows + 3 == len(tokenizer)
    eot = tokenizer.convert_tokens_to_ids("<|end_of_turn|>")
    assert eot >= rows
    eos = tokenizer.eos_token_id  # the base's own end token: EOT starts where it is predicted
    assert eos < rows
    assert torch.equal(new_in[eot], old_in[eos]) and torch.equal(new_out[eot], old_out[eos])
    bot = tokenizer.convert_tokens_to_ids("<|bot|>")  # a marker: mean of its name's pieces
    pieces = tokenizer.encode("bot", add_special_tokens=False)
    assert torch.allclose(new_in[bot], old_in[pieces].mean(0), atol=1e-6)
    assert torch.equal(new_in[:rows], old_in)
    ids, labels = format_conversation(["hi", "hello"], tokenizer, spec)
    assert ids[-1] == eot and labels[-1] == eot
    assert tokenizer.encode("<|end_of_turn|>", add_special_tokens=False) == [eot]
    assert add_special_tokens(model, tokenizer, spec) == []  # idempotent


def test_load_for_inference_returns_eot(tiny_dir: Path) -> None:
    from lima.models.load import load_for_inference

    model, tokenizer, eot = load_for_inference(tiny_dir)
    assert not model.training
    assert tokenizer.convert_ids_to_tokens(eot) == "<|eot|>"


def test_hf_offline_uncached_model_is_a_clear_error(settings, tmp_path: Path, monkeypatch) -> None:
    from lima.models.load import resolve_base

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(SourceError, match="HF_HUB_OFFLINE"):
        resolve_base(ModelSpec(base="nobody/not-a-cached-model"), settings, tmp_path)
    with pytest.raises(SourceError, match="not an HF-format folder"):
        resolve_base(ModelSpec(base=str(tmp_path)), settings, tmp_path)


def test_s3_base_is_downloaded(s3_settings, tiny_dir: Path, tmp_path: Path) -> None:
    from lima.models.load import resolve_base
    from lima.store import s3_backend

    backend = s3_backend(s3_settings, "models")
    backend.ensure_bucket()
    for path in tiny_dir.iterdir():
        backend.put_file(f"bases/tiny/{path.name}", path)
    folder = resolve_base(ModelSpec(base="s3://models/bases/tiny"), s3_settings, tmp_path)
    assert (folder / "model.safetensors").read_bytes() == (
        tiny_dir / "model.safetensors"
    ).read_bytes()
    with pytest.raises(SourceError, match="holds no object"):
        resolve_base(ModelSpec(base="s3://models/nothing-here"), s3_settings, tmp_path)


# ---- recipe presets and resource checks ----------------------------------------------------


def test_recipe_presets_follow_the_model_size_and_user_values_win() -> None:
    from lima.train.recipe import estimate_params, resolve

    cases = {
        "huggyllama/llama-65b": (32, 0.3),
        "meta-llama/Llama-2-70b-hf": (32, 0.3),
        "meta-llama/Llama-2-7b-hf": (64, 0.2),
        "smollm2-135m": (64, 0.2),
        "tiny": (64, 0.2),
    }
    for base, expected in cases.items():
        params, _ = estimate_params(ModelSpec(base=base))
        recipe = resolve(TrainSpec(), params)
        assert (recipe.global_batch_size, recipe.residual_dropout) == expected, base
    params, _ = estimate_params(ModelSpec(base="huggyllama/llama-65b"))
    chosen = resolve(TrainSpec(global_batch_size=16, residual_dropout=0.0), params)
    assert (chosen.global_batch_size, chosen.residual_dropout) == (16, 0.0)


def test_resources_are_checked_against_the_model_size() -> None:
    from lima.spec.resources import StageResources
    from lima.train.recipe import preflight

    with pytest.raises(StageError) as info:
        preflight(
            ModelSpec(base="meta-llama/Llama-2-7b-hf"),
            TrainSpec(zero_stage=2),
            StageResources(workers=8, gpus=1, memory="4Gi"),
        )
    message = str(info.value)
    assert "a 7B model in fp32 needs ~" in message and "resources.train.memory is 4Gi" in message
    needed = float(message.split("needs ~")[1].split(" GiB")[0])
    assert needed == pytest.approx((1.5 * 2**30 + 4 * 7e9) / 2**30, rel=0.01)
    # ZeRO-3 loads straight into partitions: the same model fits 8 ranks of 8Gi.
    preflight(
        ModelSpec(base="meta-llama/Llama-2-7b-hf"),
        TrainSpec(zero_stage=3),
        StageResources(workers=8, gpus=1, memory="8Gi"),
    )
    with pytest.raises(StageError, match="use workers: 8 with gpus: 1"):
        preflight(ModelSpec(), TrainSpec(), StageResources(workers=1, gpus=8, memory="64Gi"))
    recipe, summary = preflight(ModelSpec(), TrainSpec(), StageResources())
    assert recipe.global_batch_size == 64 and "global batch 64 (preset)" in summary


def test_validate_prints_the_recipe(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lima.cli import app

    examples = Path(__file__).resolve().parents[1] / "examples"
    text = (examples / "experiment.yaml").read_text()
    (tmp_path / "e.yaml").write_text(text.replace("global_batch_size: 4", "# batch unset"))
    (tmp_path / "data").symlink_to(examples / "data")  # the file's sources are relative to it
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "e.yaml")])
    assert result.exit_code == 0, result.output
    assert "global batch 64 (preset)" in result.output
    assert "residual dropout 0.2 (set)" in result.output


# ---- artifact layout, generation defaults ---------------------------------------------------


def test_layout_finds_exported_epochs_exactly() -> None:
    from lima.train import layout

    paths = [
        "epoch-5/config.json",
        "epoch-5/tokenizer_config.json",
        "epoch-6/config.json",  # no tokenizer: incomplete
        "epoch-07/config.json",
        "epoch-07/tokenizer_config.json",  # not a name the writer uses
        "x/epoch-8/config.json",
        "x/epoch-8/tokenizer_config.json",
        "metrics.jsonl",
    ]
    assert layout.exported_models(paths) == {5: "epoch-5"}
    assert layout.model_epoch(layout.model_dir(12)) == 12
    assert layout.tag_epoch(layout.tag(3)) == 3 and layout.tag_epoch("epoch-3") is None


def test_exported_models_do_not_carry_the_bases_sampling_settings(tiny_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lima.train.worker import neutral_generation_config

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    model.generation_config.repetition_penalty = 1.3
    model.generation_config.temperature = 0.6
    model.generation_config.do_sample = True
    neutral_generation_config(model, tokenizer, eot_id=7)
    config = model.generation_config
    assert config.repetition_penalty in (None, 1.0) and config.temperature in (None, 1.0)
    assert not config.do_sample and config.eos_token_id == 7
