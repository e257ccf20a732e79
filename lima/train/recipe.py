"""The recipe a run really uses, and the checks that must pass before anything starts.

The paper gives two values per model size (Section 3): "The batch size is set to 32 examples (64
for smaller models)" and residual dropout "p = 0.3 at the last layer (p = 0.2 for smaller
models)". `spec.train.global_batch_size` / `residual_dropout` left unset take the value of the
base's size class; set, they win. The resources are checked against the model's size with the
usual mixed-precision/ZeRO arithmetic, so a 7B run with 4Gi per worker fails here with the
numbers, not hours later with an out-of-memory kill.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lima.errors import StageError
from lima.spec.model import ModelSpec
from lima.spec.resources import StageResources
from lima.spec.train import TrainSpec

LARGE_PARAMS = 60e9
"""From here on the 65B recipe applies (the paper trains 7B and 65B models)."""

GiB = 1024**3
RUNTIME_OVERHEAD = 1.5 * GiB
"""Python, torch, DeepSpeed and the Ray worker itself, measured ~1.2 GiB on the tiny preset."""


@dataclass(frozen=True)
class SizePreset:
    name: str
    global_batch_size: int
    residual_dropout: float


LARGE = SizePreset("65B-class (paper: LIMA 65B)", 32, 0.3)
SMALLER = SizePreset("smaller model (paper: 7B)", 64, 0.2)


def size_preset(params: float | None) -> SizePreset:
    return LARGE if params is not None and params >= LARGE_PARAMS else SMALLER


def resolve(train: TrainSpec, params: float | None) -> TrainSpec:
    """`train` with the size preset's batch size and dropout where the spec leaves them unset."""
    preset = size_preset(params)
    return train.model_copy(
        update={
            "global_batch_size": train.global_batch_size or preset.global_batch_size,
            "residual_dropout": (
                preset.residual_dropout
                if train.residual_dropout is None
                else train.residual_dropout
            ),
        }
    )


# ---- model size ---------------------------------------------------------------------------

_SIZE_IN_NAME = re.compile(r"(?<![0-9.])(\d+(?:\.\d+)?)([bBmM])(?![a-zA-Z])")


def tiny_params(model: ModelSpec, vocab: int | None = None) -> int:
    shape = model.tiny
    vocab = vocab or shape.vocab_size
    per_layer = 4 * shape.hidden_size**2 + 3 * shape.hidden_size * shape.intermediate_size
    return shape.num_layers * per_layer + 2 * vocab * shape.hidden_size


def params_of_folder(folder: Path) -> int | None:
    """Parameter count of an HF folder from its config (model built on the meta device)."""
    if not (Path(folder) / "config.json").is_file():
        return None
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def estimate_params(model: ModelSpec, folder: Path | None = None) -> tuple[float | None, str]:
    """(parameters, how they were found) without downloading anything."""
    from lima.models.presets import PRESETS, TINY

    if model.base == TINY:
        return float(tiny_params(model)), "tiny preset shape"
    if model.base in PRESETS:
        return float(PRESETS[model.base].params), f"preset {model.base}"
    local = folder or Path(model.base.removeprefix("file://")).expanduser()
    if (local / "config.json").is_file():
        return float(params_of_folder(local) or 0) or None, "config.json"
    match = _SIZE_IN_NAME.search(model.base.rsplit("/", 1)[-1])
    if match:
        scale = 1e9 if match.group(2).lower() == "b" else 1e6
        return float(match.group(1)) * scale, "from the name"
    return None, "unknown"


def describe_params(params: float | None) -> str:
    if params is None:
        return "unknown size"
    return f"{params / 1e9:.3g}B" if params >= 1e9 else f"{params / 1e6:.3g}M"


# ---- resources ----------------------------------------------------------------------------

_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
_UNITS["T"] = 1e12


def quantity_bytes(quantity: str) -> float:
    """A Kubernetes memory quantity (`4Gi`, `512M`, `1000000`) in bytes."""
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", quantity.strip())
    if not match or (match.group(2) and match.group(2) not in _UNITS):
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return float(match.group(1)) * _UNITS.get(match.group(2), 1)


def host_memory_per_rank(params: float, train: TrainSpec, workers: int, gpus: int) -> float:
    """Bytes of host memory one rank needs (fp32 weights, AdamW, ZeRO partitioning).

    Loading: ZeRO-3 loads straight into partitions (4P/world); ZeRO-2 holds a full fp32 copy.
    Training on CPUs keeps everything in host memory: weights (4P, partitioned under ZeRO-3),
    plus gradients, fp32 master copy and the two Adam moments (16P), partitioned over ranks.
    On GPUs only optimizer offload keeps state on the host (16P/world).
    """
    full_weights = 4 * params
    weights = full_weights / workers if train.zero_stage == 3 else full_weights
    state = 16 * params / workers
    if gpus and not train.offload_optimizer:
        return RUNTIME_OVERHEAD + weights
    return RUNTIME_OVERHEAD + weights + state


def train_problems(resources: StageResources, train: TrainSpec, params: float | None) -> list[str]:
    """Problems that would make the run fail or silently under-use its hardware."""
    problems = []
    if resources.gpus > 1:
        problems.append(
            f"resources.train.gpus is {resources.gpus} per worker, but each training worker is "
            f"one data-parallel rank on one GPU: use workers: {resources.workers * resources.gpus}"
            " with gpus: 1"
        )
    if params is not None:
        need = host_memory_per_rank(params, train, resources.workers, resources.gpus)
        have = quantity_bytes(resources.memory)
        if need > have:
            where = f"{resources.workers} worker(s), ZeRO-{train.zero_stage}"
            where += ", GPUs" if resources.gpus else ", CPUs"
            problems.append(
                f"a {describe_params(params)} model in fp32 needs ~{need / GiB:.1f} GiB per rank "
                f"({where}); resources.train.memory is {resources.memory}"
            )
    return problems


def preflight(
    model: ModelSpec, train: TrainSpec, resources: StageResources, folder: Path | None = None
) -> tuple[TrainSpec, str]:
    """(resolved recipe, one-line summary) or StageError listing every problem."""
    params, how = estimate_params(model, folder)
    recipe = resolve(train, params)
    problems = train_problems(resources, recipe, params)
    if problems:
        raise StageError("train resources do not fit the model: " + "; ".join(problems))
    return recipe, describe_recipe(model, train, params, how)


def describe_recipe(
    model: ModelSpec, train: TrainSpec, params: float | None = None, how: str | None = None
) -> str:
    """One line for `lima validate`: the base's size, its preset and the values in use."""
    if how is None:
        params, how = estimate_params(model)
    recipe = resolve(train, params)
    size = describe_params(params) + ("" if params is None else f" ({how})")
    chosen = [
        f"global batch {recipe.global_batch_size}"
        + (" (preset)" if train.global_batch_size is None else " (set)"),
        f"residual dropout {recipe.residual_dropout}"
        + (" (preset)" if train.residual_dropout is None else " (set)"),
    ]
    return f"base {model.base}: {size}, recipe {size_preset(params).name}: " + ", ".join(chosen)
