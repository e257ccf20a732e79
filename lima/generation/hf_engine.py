"""One model replica answering prompts with batched HF generation (left padding, KV cache).

Prompts are sorted by length and cut into batches of `batch_size`, so padding stays small. Each
batch is left-padded (generation appends on the right, so every row's last prompt token sits in
the last column and the positions come from the attention mask), decoded with the KV cache, and
stopped per row at EOT. Sampling goes through `decoding.processors`, so an answer depends only on
its prompt, the model and the seed, never on its batch mates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lima.generation.decoding import DecodeConfig, processors, seed_for
from lima.generation.prompts import PromptRecord


@dataclass
class TurnResult:
    token_ids: list[int]
    finish_reason: str  # "eot" | "length"
    prompt_tokens: int
    latency_s: float
    seed: int


def chat_spec(model_dir: Path) -> Any:
    """The chat tokens a model folder was trained with (`lima_chat.json`), else the defaults."""
    from lima.models.load import read_chat_tokens
    from lima.spec.model import ModelSpec

    return ModelSpec(**read_chat_tokens(Path(model_dir)))


class HFEngine:
    """Loads a model folder once; answers lists of prompts."""

    name = "hf"

    def __init__(
        self, model_dir: Path, config: DecodeConfig, device: str = "cpu", threads: int | None = None
    ) -> None:
        import torch

        from lima.models.load import load_for_inference

        if threads:
            torch.set_num_threads(max(1, int(threads)))
        self.config = config
        self.device = device
        self.model_dir = Path(model_dir)
        self.model, self.tokenizer, self.eot_id = load_for_inference(self.model_dir, device)
        self.model.eval()
        self.spec = chat_spec(self.model_dir)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else int(self.eot_id)

    # -- one turn for many prompts ----------------------------------------------------------------

    def generate_turns(self, prompts: list[list[int]], seeds: list[int]) -> list[TurnResult]:
        """Answer token-id prompts (one turn each); results in input order."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[TurnResult | None] = [None] * len(prompts)
        size = self.config.batch_size
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            batch = self._generate_batch([prompts[i] for i in chunk], [seeds[i] for i in chunk])
            for index, result in zip(chunk, batch, strict=True):
                results[index] = result
        return [r for r in results if r is not None]

    def _generate_batch(self, prompts: list[list[int]], seeds: list[int]) -> list[TurnResult]:
        import torch
        from transformers import GenerationConfig

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
        generation = GenerationConfig(
            do_sample=False,  # sampling happens in PerRowSampler (per-prompt generators)
            max_new_tokens=self.config.max_new_tokens,
            eos_token_id=self.eot_id,
            pad_token_id=self.pad_id,
            use_cache=True,
        )
        started = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                generation_config=generation,
                logits_processor=processors(self.config, width, seeds),
            )
        latency = time.perf_counter() - started
        return [
            self._turn_result(out[row, width:].tolist(), len(prompts[row]), latency, seeds[row])
            for row in range(len(prompts))
        ]

    def _turn_result(
        self, new: list[int], prompt_tokens: int, latency: float, seed: int
    ) -> TurnResult:
        if self.eot_id in new:
            return TurnResult(
                new[: new.index(self.eot_id) + 1], "eot", prompt_tokens, latency, seed
            )
        return TurnResult(new, "length", prompt_tokens, latency, seed)

    # -- whole conversations ------------------------------------------------------------------

    def answer(self, records: list[PromptRecord]) -> list[dict[str, Any]]:
        """Answer every record turn by turn; turn k sees the user turns and answers before it."""
        return answer_turn_by_turn(self, records)

    def decode(self, token_ids: list[int]) -> str:
        return decode_answer(self.tokenizer, self.eot_id, token_ids)


def decode_answer(tokenizer: Any, eot_id: int, token_ids: list[int]) -> str:
    body = [t for t in token_ids if t != eot_id]
    return tokenizer.decode(body, skip_special_tokens=True).strip()


def answer_turn_by_turn(engine: Any, records: list[PromptRecord]) -> list[dict[str, Any]]:
    """The multi-turn loop every engine shares: turn k of each record is generated (as one
    batch across records) after its earlier user turns and the engine's own earlier answers.

    `engine` provides tokenizer, spec, config, `generate_turns(prompts, seeds)` and `decode`.
    """
    from lima.models.chat import encode_prompt

    history: dict[str, list[str]] = {r.id: [] for r in records}
    turns_out: dict[str, list[dict[str, Any]]] = {r.id: [] for r in records}
    for turn in range(max(len(r.turns) for r in records)):
        active = [r for r in records if turn < len(r.turns)]
        convs = [[*history[r.id], r.turns[turn]] for r in active]
        prompts = [encode_prompt(c, engine.tokenizer, engine.spec) for c in convs]
        seeds = [seed_for(engine.config.seed, r.id, turn) for r in active]
        for record, conv, result in zip(
            active, convs, engine.generate_turns(prompts, seeds), strict=True
        ):
            text = engine.decode(result.token_ids)
            history[record.id] = [*conv, text]
            turns_out[record.id].append(turn_record(record.turns[turn], text, result))
    return [{"id": r.id, "turns": turns_out[r.id]} for r in records]


def turn_record(prompt: str, text: str, result: TurnResult) -> dict[str, Any]:
    return {
        "prompt": prompt,
        "answer": text,
        "finish_reason": result.finish_reason,
        "prompt_tokens": result.prompt_tokens,
        "answer_tokens": len(result.token_ids),
        "latency_s": round(result.latency_s, 4),
        "seed": result.seed,
    }
