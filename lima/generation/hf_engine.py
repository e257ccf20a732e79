"""One model replica answering prompts with batched HF generation (left padding, KV cache).

Prompts are sorted by length and cut into batches of `batch_size`, so padding stays small. Each
batch is left-padded (generation appends on the right, so every row's last prompt token sits in
the last column and the positions come from the attention mask), decoded with the KV cache, and
stopped per row where its prompt format says the answer ends (`lima.generation.formats`).
Sampling goes through `decoding.processors`, so an answer depends only on its prompt, the model
and the seed, never on its batch mates, and never on the base's own `generation_config.json`
(whose repetition penalty or sampling settings would otherwise stack on the paper's).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lima.generation.decoding import DecodeConfig, processors, seed_for
from lima.generation.formats import PromptFormat, resolve_format
from lima.generation.prompt_sets import PromptRecord


@dataclass
class TurnResult:
    token_ids: list[int]
    """Answer tokens, up to and including the stop token (or stop string) when it ended."""
    finish_reason: str  # "eot" (the format's end of turn) | "length"
    prompt_tokens: int
    seed: int
    text: str
    """The answer as text, without stop token or stop string."""


def chat_spec(model_dir: Path) -> Any:
    """The chat tokens a model folder was trained with (`lima_chat.json`), else the defaults."""
    from lima.models.load import read_chat_tokens
    from lima.spec.model import ModelSpec

    return ModelSpec(**read_chat_tokens(Path(model_dir)))


def load_model(model_dir: Path, device: str) -> tuple[Any, Any]:
    """(model in eval mode on `device`, tokenizer) of an HF folder; bf16 on GPUs."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    return model, tokenizer


class HFEngine:
    """Loads a model folder once; answers lists of prompts."""

    name = "hf"

    def __init__(
        self,
        model_dir: Path,
        config: DecodeConfig,
        device: str = "cpu",
        threads: int | None = None,
        prompt_format: str = "lima",
    ) -> None:
        import torch
        from transformers import GenerationConfig

        if threads:
            torch.set_num_threads(max(1, int(threads)))
        self.config = config
        self.device = device
        self.model_dir = Path(model_dir)
        self.model, self.tokenizer = load_model(self.model_dir, device)
        self.format: PromptFormat = resolve_format(
            prompt_format, self.model_dir, self.tokenizer, self.model.generation_config
        )
        # Only lima-run's decoding applies: the base's generation_config.json (read above for its
        # stop tokens) must not add its own repetition penalty, top-k or sampling flags.
        self.model.generation_config = GenerationConfig()
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.format.stop_ids[0]
        self.busy_s = 0.0
        """Wall time spent generating (throughput figures; never written into answers)."""

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
            eos_token_id=self.format.stop_ids,
            pad_token_id=self.pad_id,
            stop_strings=self.format.stop_strings or None,
            use_cache=True,
        )
        extra = {"tokenizer": self.tokenizer} if self.format.stop_strings else {}
        started = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                generation_config=generation,
                logits_processor=processors(self.config, width, seeds),
                **extra,
            )
        self.busy_s += time.perf_counter() - started
        return [
            self._turn_result(out[row, width:].tolist(), len(prompts[row]), seeds[row])
            for row in range(len(prompts))
        ]

    def _turn_result(self, new: list[int], prompt_tokens: int, seed: int) -> TurnResult:
        ended = self.format.answer_end(new)
        if ended is not None:
            kept, text = ended
            return TurnResult(new[:kept], "eot", prompt_tokens, seed, text)
        return TurnResult(new, "length", prompt_tokens, seed, self.format.text(new))

    # -- whole conversations ------------------------------------------------------------------

    def answer(self, records: list[PromptRecord]) -> list[dict[str, Any]]:
        """Answer every record turn by turn; turn k sees the user turns and answers before it."""
        return answer_turn_by_turn(self, records)


def answer_turn_by_turn(engine: Any, records: list[PromptRecord]) -> list[dict[str, Any]]:
    """The multi-turn loop every engine shares: turn k of each record is generated (as one
    batch across records) after its earlier user turns and the engine's own earlier answers.

    `engine` provides `format` (a PromptFormat), `config` and `generate_turns(prompts, seeds)`.
    """
    history: dict[str, list[str]] = {r.id: [] for r in records}
    turns_out: dict[str, list[dict[str, Any]]] = {r.id: [] for r in records}
    for turn in range(max(len(r.turns) for r in records)):
        active = [r for r in records if turn < len(r.turns)]
        convs = [[*history[r.id], r.turns[turn]] for r in active]
        prompts = [engine.format.encode(c) for c in convs]
        seeds = [seed_for(engine.config.seed, r.id, turn) for r in active]
        for record, conv, result in zip(
            active, convs, engine.generate_turns(prompts, seeds), strict=True
        ):
            history[record.id] = [*conv, result.text]
            turns_out[record.id].append(turn_record(record.turns[turn], result))
    name = engine.format.name
    return [{"id": r.id, "prompt_format": name, "turns": turns_out[r.id]} for r in records]


def turn_record(prompt: str, result: TurnResult) -> dict[str, Any]:
    """One answered turn; content only (no wall-clock field: answer files are hashed)."""
    return {
        "prompt": prompt,
        "answer": result.text,
        "finish_reason": result.finish_reason,
        "prompt_tokens": result.prompt_tokens,
        "answer_tokens": len(result.token_ids),
        "seed": result.seed,
    }
