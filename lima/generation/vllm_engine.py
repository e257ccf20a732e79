"""The optional vLLM engine (GPUs only): the same `answer(records)` contract as `HFEngine`.

vLLM is not a dependency of lima-run; install it on GPU images. Differences from the HF engine,
documented in docs/evaluation.md: vLLM's `repetition_penalty` covers prompt and generated tokens
(its sampler penalises both), and seeds are per request (`SamplingParams.seed`), so answers are
reproducible per prompt but not bit-identical to the HF engine's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lima.errors import StageError
from lima.generation.config import DecodeConfig
from lima.generation.hf_engine import (
    TurnResult,
    answer_turn_by_turn,
    chat_spec,
    decode_answer,
)
from lima.generation.prompts import PromptRecord


def check_available() -> None:
    """Raise a clear StageError unless vLLM is importable and a CUDA GPU is visible."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise StageError(
            "spec.generate.engine is `vllm` but vllm is not installed in this image; "
            "install it on the GPU image or use engine: hf"
        ) from None
    import torch

    if not torch.cuda.is_available():
        raise StageError("spec.generate.engine `vllm` needs a GPU (set resources.generate.gpus)")


class VLLMEngine:
    name = "vllm"

    def __init__(self, model_dir: Path, config: DecodeConfig, **_: Any) -> None:
        check_available()
        from transformers import AutoTokenizer
        from vllm import LLM

        from lima.models.load import read_chat_tokens

        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.spec = chat_spec(model_dir)
        self.eot_id = int(
            self.tokenizer.convert_tokens_to_ids(read_chat_tokens(model_dir)["eot_token"])
        )
        self.llm = LLM(model=str(model_dir), seed=config.seed)

    def _params(self, seed: int) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            temperature=self.config.temperature if self.config.do_sample else 0.0,
            top_p=self.config.top_p,
            repetition_penalty=self.config.repetition_penalty,
            max_tokens=self.config.max_new_tokens,
            stop_token_ids=[self.eot_id],
            seed=seed,
        )

    def generate_turns(self, prompts: list[list[int]], seeds: list[int]) -> list[TurnResult]:
        """One vLLM batch; a `stop` finish means the EOT stop token was produced."""
        from vllm.inputs import TokensPrompt

        started = time.perf_counter()
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=p) for p in prompts],
            sampling_params=[self._params(s) for s in seeds],
            use_tqdm=False,
        )
        latency = time.perf_counter() - started
        return [
            TurnResult(
                list(out.outputs[0].token_ids),
                "eot" if out.outputs[0].finish_reason == "stop" else "length",
                len(prompt),
                latency,
                seed,
            )
            for prompt, seed, out in zip(prompts, seeds, outputs, strict=True)
        ]

    def decode(self, token_ids: list[int]) -> str:
        return decode_answer(self.tokenizer, self.eot_id, token_ids)

    def answer(self, records: list[PromptRecord]) -> list[dict[str, Any]]:
        return answer_turn_by_turn(self, records)
