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
from lima.generation.formats import resolve_format
from lima.generation.hf_engine import TurnResult, answer_turn_by_turn
from lima.generation.prompt_sets import PromptRecord


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

    def __init__(
        self, model_dir: Path, config: DecodeConfig, prompt_format: str = "lima", **_: Any
    ) -> None:
        check_available()
        from transformers import AutoTokenizer, GenerationConfig
        from vllm import LLM

        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        own = None
        if (Path(model_dir) / "generation_config.json").is_file():
            own = GenerationConfig.from_pretrained(model_dir)
        self.format = resolve_format(prompt_format, Path(model_dir), self.tokenizer, own)
        # generation_config="vllm": vLLM's defaults, not the folder's (the paper's settings only)
        self.llm = LLM(model=str(model_dir), seed=config.seed, generation_config="vllm")
        self.busy_s = 0.0

    def _params(self, seed: int) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            temperature=self.config.temperature if self.config.do_sample else 0.0,
            top_p=self.config.top_p,
            repetition_penalty=self.config.repetition_penalty,
            max_tokens=self.config.max_new_tokens,
            stop_token_ids=list(self.format.stop_ids),
            stop=list(self.format.stop_strings) or None,
            seed=seed,
        )

    def generate_turns(self, prompts: list[list[int]], seeds: list[int]) -> list[TurnResult]:
        """One vLLM batch; a `stop` finish means a stop token or stop string was produced."""
        from vllm.inputs import TokensPrompt

        started = time.perf_counter()
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=p) for p in prompts],
            sampling_params=[self._params(s) for s in seeds],
            use_tqdm=False,
        )
        self.busy_s += time.perf_counter() - started
        return [
            self._result(out.outputs[0], len(prompt), seed)
            for prompt, seed, out in zip(prompts, seeds, outputs, strict=True)
        ]

    def _result(self, output: Any, prompt_tokens: int, seed: int) -> TurnResult:
        new = list(output.token_ids)
        ended = self.format.answer_end(new)
        if ended is not None:
            kept, text = ended
            return TurnResult(new[:kept], "eot", prompt_tokens, seed, text)
        # vLLM may leave a matched stop string out of the tokens: its finish reason says so
        reason = "eot" if output.finish_reason == "stop" else "length"
        return TurnResult(new, reason, prompt_tokens, seed, self.format.text(new))

    def answer(self, records: list[PromptRecord]) -> list[dict[str, Any]]:
        return answer_turn_by_turn(self, records)
