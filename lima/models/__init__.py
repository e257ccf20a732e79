"""Models and the chat format: the `tiny` preset, loading real bases, the EOT token.

Public API (stable, used by the train and generate stages):

- `chat.format_conversation(turns, tokenizer, spec, add_generation_prompt=False)`
  -> (input_ids, labels)
- `chat.encode_prompt(turns_so_far, tokenizer, spec) -> input_ids` (ends with the assistant marker)
- `chat.special_token_ids(tokenizer, spec) -> ChatTokens` (BOS only where the base uses one)
- `chat_export.save_chat_files(folder, tokenizer, spec)` (chat template, generation config, EOT)
- `embeddings.init_new_rows(model, tokenizer, spec, first_new)` (EOT from the base's EOS row)
- `tiny.build_tiny(spec, texts, out_dir) -> Path`
- `load.resolve_base(model_spec, settings, scratch, texts=None) -> Path` (local HF folder)
- `load.add_special_tokens(model, tokenizer, spec) -> list[str]` (tokens added)
- `load.load_for_inference(path, device="cpu") -> (model, tokenizer, eot_id)`
"""

from __future__ import annotations

__all__ = ["CHAT_FILE"]

CHAT_FILE = "lima_chat.json"
"""Written next to every model folder lima-run produces: the chat tokens (user/assistant/EOT)."""
