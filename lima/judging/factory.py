"""`make_judge`: the one place that turns `spec.judge` and settings into a `Judge`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lima.errors import LimaError
from lima.judging.cache import CachedJudge
from lima.judging.types import Judge
from lima.settings import Settings
from lima.spec.evaluate import REAL_JUDGE_HOWTO, JudgeSpec

if TYPE_CHECKING:
    from lima.store.artifacts import ArtifactStore


def make_judge(spec: Any, settings: Settings, store: ArtifactStore | None = None) -> Judge:
    """The judge named by `spec.judge.backend`, wrapped so every verdict is cached in `store`.

    `spec` is a `JudgeSpec` or anything with a `.judge` JudgeSpec (the Experiment's spec).
    - `reference`: the embedded proxy (packaged all-MiniLM-L6-v2), `proxy=True`,
      `symmetric=True` (position consistency is n/a).
    - `openai`: `LIMA_JUDGE_BASE_URL` (required), model from `spec.judge.model` else
      `LIMA_JUDGE_MODEL`, key from `LIMA_JUDGE_API_KEY` (sent only as a Bearer header).
    - `hf`: a local Hugging Face causal LM at `spec.judge.model` else `LIMA_JUDGE_MODEL` (a
      folder, a Hub id, a `.gguf` file, or a preset such as `smollm2-135m`, de-quantized once
      into a cached folder under the scratch dir).
    LLM judges ask the questions of the `spec.judge.prompts` set (`lima` or `mt-bench`).
    With `store=None` nothing is cached. Failed requests (after retries) raise `JudgeError`
    at the end of a `judge()` call, after the successful verdicts were cached.
    """
    judge_spec = _judge_spec(spec)
    backend = getattr(judge_spec.backend, "value", judge_spec.backend)
    if backend is None:  # a bare JudgeSpec (no Experiment to resolve it against)
        raise LimaError(f"spec.judge.backend is not set: {REAL_JUDGE_HOWTO}")
    if backend == "reference":
        from lima.judging.reference import ReferenceJudge

        inner: Judge = ReferenceJudge(margin=judge_spec.reference_margin)
    elif backend == "openai":
        inner = _openai_judge(judge_spec, settings)
    elif backend == "hf":
        inner = _hf_judge(judge_spec, settings)
    else:  # the spec's enum makes this unreachable for validated specs
        raise LimaError(f"spec.judge.backend: unknown judge backend {backend!r}")
    return CachedJudge(inner, store)


def _judge_spec(spec: Any) -> JudgeSpec:
    if isinstance(spec, JudgeSpec):
        return spec
    inner = getattr(spec, "judge", None)
    if isinstance(inner, JudgeSpec):
        return inner
    inner_spec = getattr(spec, "spec", None)
    if inner_spec is not None and isinstance(getattr(inner_spec, "judge", None), JudgeSpec):
        return inner_spec.judge
    raise TypeError(f"make_judge needs a JudgeSpec or an object with .judge, got {type(spec)}")


def _openai_judge(spec: JudgeSpec, settings: Settings) -> Judge:
    from lima.judging.llm import LLMJudge
    from lima.judging.openai_client import OpenAICompleter

    if not settings.judge_base_url:
        raise LimaError(
            "spec.judge.backend is `openai` but LIMA_JUDGE_BASE_URL is not set "
            "(e.g. http://vllm:8000/v1)"
        )
    model = spec.model or settings.judge_model
    if not model:
        raise LimaError("spec.judge.backend is `openai`: set spec.judge.model or LIMA_JUDGE_MODEL")
    completer = OpenAICompleter(
        base_url=settings.judge_base_url,
        model=model,
        api_key=settings.judge_api_key,
        concurrency=spec.concurrency,
        timeout_s=spec.timeout_s,
        max_retries=spec.max_retries,
        backoff_s=spec.backoff_s,
        max_tokens=spec.max_tokens,
    )
    return LLMJudge(
        f"openai:{model}", completer, max_tokens=spec.max_tokens, prompt_set=spec.prompts
    )


def _hf_judge(spec: JudgeSpec, settings: Settings) -> Judge:
    from lima.judging.hf import HFCompleter
    from lima.judging.llm import LLMJudge

    location = spec.model or settings.judge_model
    if not location:
        raise LimaError("spec.judge.backend is `hf`: set spec.judge.model to a model path or id")
    from lima.models.presets import PRESETS, build_gguf_preset

    name = location
    if location in PRESETS:  # de-quantize the packaged GGUF once into a cached HF folder
        location = str(build_gguf_preset(PRESETS[location], settings.scratch_dir))
    completer = HFCompleter(location, max_new_tokens=spec.max_tokens, batch_size=8)
    return LLMJudge(f"hf:{name}", completer, max_tokens=spec.max_tokens, prompt_set=spec.prompts)
