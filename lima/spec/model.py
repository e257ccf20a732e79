"""`spec.model`: the pretrained base that is fine-tuned."""

from __future__ import annotations

from pydantic import Field, field_validator

from lima.spec.base import SpecModel


class TinyPreset(SpecModel):
    """Shape of the built-in `tiny` Llama-architecture model (random init, seeded), for CPUs."""

    hidden_size: int = Field(default=64, ge=8)
    intermediate_size: int = Field(default=172, ge=8)
    num_layers: int = Field(default=4, ge=1)
    num_heads: int = Field(default=4, ge=1)
    vocab_size: int = Field(default=2048, ge=300)
    """Size of the BPE vocabulary trained with `tokenizers` on the training texts."""

    seed: int = 0


class ModelSpec(SpecModel):
    """The base model and its tokenizer."""

    base: str = "tiny"
    """`tiny` (built-in preset), a Hugging Face id (`meta-llama/Llama-2-7b-hf`), a local path,
    or `s3://bucket/prefix` of an HF-format folder."""

    tokenizer: str | None = None
    """Tokenizer location when it differs from `base` (same forms as `base`)."""

    eot_token: str = "<|eot|>"
    """End-of-turn token added to the vocabulary; ends every utterance and stops generation
    (LIMA Section 3: a special end-of-turn token (EOT) is introduced at the end of each
    utterance)."""

    user_token: str = "<|user|>"
    """Marks the start of a user turn."""

    assistant_token: str = "<|assistant|>"
    """Marks the start of an assistant turn."""

    tiny: TinyPreset = Field(default_factory=TinyPreset)
    """Shape of the `tiny` preset (ignored for other bases)."""

    trust_remote_code: bool = False
    """Passed to `from_pretrained`; off by default because it runs code from the model folder."""

    @field_validator("base")
    @classmethod
    def _base_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name `tiny`, an HF id, a path or an s3:// URI")
        return value
