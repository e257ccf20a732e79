"""The DeepSpeed config of a run, derived from `spec.train` and the worker count."""

from __future__ import annotations

from typing import Any

from lima.errors import StageError
from lima.spec.train import TrainSpec


def gradient_accumulation(train: TrainSpec, workers: int) -> int:
    """global batch = micro batch x accumulation x workers; an error when it does not divide.
    `train` is a resolved recipe (`lima.train.recipe.resolve`)."""
    if train.global_batch_size is None:
        raise ValueError("resolve the recipe first (lima.train.recipe.resolve)")
    per_step = train.micro_batch_size * workers
    if train.global_batch_size % per_step:
        raise StageError(
            f"spec.train.global_batch_size ({train.global_batch_size}) is not divisible by "
            f"micro_batch_size ({train.micro_batch_size}) x workers ({workers}) = {per_step}"
        )
    return train.global_batch_size // per_step


def build_ds_config(train: TrainSpec, workers: int, use_gpu: bool) -> dict[str, Any]:
    """ZeRO 2/3, optional optimizer offload, bf16 on GPUs / fp32 on CPU, AdamW, clipping.

    The learning rate is set by the training loop each step (`schedule.linear_lr`), so no
    DeepSpeed scheduler block.
    """
    zero: dict[str, Any] = {"stage": train.zero_stage, "overlap_comm": use_gpu}
    if train.zero_stage == 3:
        # Lets `_zero3_consolidated_16bit_state_dict` gather full weights for the HF export.
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if train.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": use_gpu}
    return {
        "train_micro_batch_size_per_gpu": train.micro_batch_size,
        "gradient_accumulation_steps": gradient_accumulation(train, workers),
        "train_batch_size": train.global_batch_size,
        "gradient_clipping": train.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": use_gpu},
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": train.lr,
                "betas": [train.adam_beta1, train.adam_beta2],
                "weight_decay": train.weight_decay,
                "eps": 1e-8,
                # torch's AdamW (foreach) instead of DeepSpeed's fused Adam: no op to compile
                # at start-up, on CPUs and GPUs alike.
                "torch_adam": True,
                "adam_w_mode": True,
            },
        },
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
