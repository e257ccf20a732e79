"""Worker-side model setup: get the base folder onto this worker and load model + tokenizer.

Under ZeRO-3 the weights are loaded into partitioned parameters (transformers' `from_pretrained`
inside `deepspeed.zero.Init`, switched on by a live `HfDeepSpeedConfig`): each rank holds only
its 1/world share of the fp32 weights instead of a full copy.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from lima.train.config import LoopConfig


def _unpack(files: dict[str, bytes], folder: Path) -> Path:
    if not (folder / ".complete").is_file():
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        (folder / ".complete").write_text("ok\n")
    return folder


def _materialise_base(config: LoopConfig, fetch: Any) -> tuple[Path, Path]:
    """(model folder, tokenizer folder) on this worker: shipped through the object store by the
    driver (tokenizer always; weights when small), or the base resolved here (HF id, s3://)."""
    from lima.models.load import resolve_base
    from lima.settings import load_settings

    base = config.base
    root = Path(tempfile.gettempdir()) / "lima-train-bases" / base.digest
    tokenizer_dir = _unpack(fetch(base.tokenizer_files), root / "tokenizer")
    if base.model_files is not None:
        return _unpack(fetch(base.model_files), root / "model"), tokenizer_dir
    return resolve_base(config.model, load_settings(), root / "resolved"), tokenizer_dir


def neutral_generation_config(model: Any, tokenizer: Any, eot_id: int) -> None:
    """Drop the base's sampling defaults (a base's generation_config.json may carry its own
    repetition penalty or temperature, which would stack on the paper's) and stop at EOT: the
    exported epochs carry only the token ids."""
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eot_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def load_model(config: LoopConfig, fetch: Any) -> tuple[Any, Any, Any]:
    """(model in train mode, tokenizer, the HfDeepSpeedConfig to keep alive or None)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lima.models.chat import special_token_ids
    from lima.models.load import add_special_tokens

    spec = config.model
    model_dir, tokenizer_dir = _materialise_base(config, fetch)
    torch.manual_seed(config.train.seed)
    hf_ds_config = None
    if config.train.zero_stage == 3:
        import deepspeed
        from transformers.integrations.deepspeed import HfDeepSpeedConfig

        # The config checks the batch size against the world size: join the group first.
        deepspeed.init_distributed()
        hf_ds_config = HfDeepSpeedConfig(config.ds_config)  # from_pretrained now uses zero.Init
    tokenizer = AutoTokenizer.from_pretrained(
        tokenizer_dir, trust_remote_code=spec.trust_remote_code
    )
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, trust_remote_code=spec.trust_remote_code
    )
    add_special_tokens(model, tokenizer, spec)
    neutral_generation_config(model, tokenizer, special_token_ids(tokenizer, spec).eot)
    model.config.use_cache = False
    model.train()  # from_pretrained returns eval mode: residual dropout would stay off
    return model, tokenizer, hf_ds_config
