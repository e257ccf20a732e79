"""The `tiny` preset: a BPE tokenizer trained on the training texts + a small random Llama.

Nothing is downloaded; the same texts and seed always give the same folder (tokenizer merges and
weights), so the demo and the tests are reproducible on a laptop CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lima.models.chat_export import save_chat_files, write_chat_file
from lima.spec.model import ModelSpec

PAD, BOS, EOS = "<pad>", "<s>", "</s>"

__all__ = ["build_tiny", "train_tokenizer", "write_chat_file"]


def train_tokenizer(spec: ModelSpec, texts: Iterable[str]):
    """A byte-level BPE tokenizer (like GPT-2/Llama-3) with the chat markers as special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, BOS, EOS, spec.user_token, spec.assistant_token, spec.eot_token]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.tiny.vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unk
        show_progress=False,
    )
    tokenizer.train_from_iterator((t for t in texts if t), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        additional_special_tokens=specials[3:],
        clean_up_tokenization_spaces=False,
    )


def tiny_config(spec: ModelSpec, vocab_size: int, tokenizer, max_positions: int = 4096):
    from transformers import LlamaConfig

    shape = spec.tiny
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_heads,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids(spec.eot_token),
        tie_word_embeddings=False,
    )


def build_tiny(spec: ModelSpec, texts: Iterable[str], out_dir: Path) -> Path:
    """Train the tokenizer on `texts`, build a seeded random LlamaForCausalLM; save both to out_dir.

    Returns `out_dir`, an ordinary HF folder (config.json, model.safetensors, tokenizer files with
    the LIMA chat template) plus `lima_chat.json` naming the chat tokens.
    """
    import torch
    from transformers import LlamaForCausalLM

    if spec.tiny.hidden_size % spec.tiny.num_heads:
        raise ValueError("spec.model.tiny.hidden_size must be divisible by num_heads")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(spec, texts)
    config = tiny_config(spec, len(tokenizer), tokenizer)
    torch.manual_seed(spec.tiny.seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out_dir)
    save_chat_files(out_dir, tokenizer, spec)  # tokenizer + chat template + generation config
    return out_dir
