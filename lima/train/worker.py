"""Worker-side model setup: get the base folder onto this worker and load model + tokenizer."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any


def _unpack(files_ref: Any, folder: Path) -> Path:
    import ray

    if not (folder / ".complete").is_file():
        for name, data in ray.get(files_ref).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        (folder / ".complete").write_text("ok\n")
    return folder


def _materialise_base(config: dict[str, Any]) -> tuple[Path, Path]:
    """(model folder, tokenizer folder) on this worker: shipped through the object store by the
    driver (tokenizer always; weights when small), or the base resolved here (HF id, s3://)."""
    from lima.models.load import resolve_base
    from lima.settings import load_settings
    from lima.spec.model import ModelSpec

    base = config["base"]
    root = Path(tempfile.gettempdir()) / "lima-train-bases" / base["digest"]
    tokenizer_dir = _unpack(base["tokenizer_files"], root / "tokenizer")
    if base.get("model_files") is not None:
        return _unpack(base["model_files"], root / "model"), tokenizer_dir
    spec = ModelSpec.model_validate(config["model_spec"])
    return resolve_base(spec, load_settings(), root / "resolved"), tokenizer_dir


def load_model(config: dict[str, Any]):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lima.models.load import add_special_tokens
    from lima.spec.model import ModelSpec

    spec = ModelSpec.model_validate(config["model_spec"])
    model_dir, tokenizer_dir = _materialise_base(config)
    torch.manual_seed(config["seed"])
    tokenizer = AutoTokenizer.from_pretrained(
        tokenizer_dir, trust_remote_code=spec.trust_remote_code
    )
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, trust_remote_code=spec.trust_remote_code
    )
    add_special_tokens(model, tokenizer, spec)
    model.config.use_cache = False
    return model, tokenizer, spec
