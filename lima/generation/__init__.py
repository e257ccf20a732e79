"""Answering prompts with a fine-tuned model: decoding settings, prompt sets, engines, Ray pool.

- `decoding`: LIMA's sampling settings, the generated-tokens-only repetition penalty, per-prompt
  seeds that make answers independent of batching.
- `prompts`: prompt sets (curated splits, JSONL, MT-Bench / Vicuna `question.jsonl`).
- `hf_engine` / `vllm_engine`: one model replica answering a batch of prompts, turn by turn.
- `pool`: a Ray Data actor pool of replicas over a prompt set.
- `answers`: the answer records and baseline answer files.
"""

from __future__ import annotations
