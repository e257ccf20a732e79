"""LIMA's decoding settings and the pieces of the sampler that make them exact and reproducible.

Paper, Section 4 ("Experiment Setup"): "we apply nucleus sampling with p = 0.9 and a temperature of
0.7. We apply a repetition penalty of previously generated tokens with a hyperparameter of 1.2, and
limit the maximum token length to 2048."

Two details the usual `model.generate(do_sample=True, repetition_penalty=1.2)` gets differently:

- HF's `RepetitionPenaltyLogitsProcessor` penalises every token in `input_ids`, i.e. the prompt
  *and* the generated tokens. The paper penalises "previously generated tokens", so
  `GeneratedTokensRepetitionPenalty` only looks at tokens after the prompt.
- A batch shares one torch random generator, so an answer would depend on which prompts it was
  batched with. `PerRowSampler` draws each row's token from that prompt's own generator, seeded
  with `seed_for(seed, prompt_id, turn)`, so a re-run reproduces every answer at any batch size.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from lima.generation.config import DecodeConfig, seed_for

__all__ = [
    "DecodeConfig",
    "GeneratedTokensRepetitionPenalty",
    "PerRowSampler",
    "processors",
    "seed_for",
]


class GeneratedTokensRepetitionPenalty(LogitsProcessor):
    """CTRL-style repetition penalty on tokens generated so far, never on prompt tokens.

    For each token already generated in a row, a positive logit is divided by `penalty` and a
    negative one multiplied by it (Keskar et al., 2019, the rule HF and vLLM also use). The
    prompt occupies the first `prompt_length` positions of `input_ids` (left-padded batch).
    """

    def __init__(self, penalty: float, prompt_length: int) -> None:
        if penalty < 1.0:
            raise ValueError(f"repetition penalty must be >= 1 (got {penalty})")
        self.penalty = penalty
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_length :]
        if self.penalty == 1.0 or generated.shape[1] == 0:
            return scores
        picked = torch.gather(scores, 1, generated)
        picked = torch.where(picked > 0, picked / self.penalty, picked * self.penalty)
        return scores.scatter(1, generated, picked)


class PerRowSampler(LogitsProcessor):
    """Samples each row's next token with that row's own generator; returns logits that make the
    (greedy) decoding loop pick exactly the sampled token.

    Runs last, after temperature and top-p have shaped the scores.
    """

    def __init__(self, seeds: list[int]) -> None:
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(scores.float(), dim=-1).cpu()
        chosen = [
            int(torch.multinomial(probs[row], 1, generator=gen).item())
            for row, gen in enumerate(self.generators)
        ]
        out = torch.full_like(scores, float("-inf"))
        index = torch.tensor(chosen, device=scores.device).unsqueeze(1)
        return out.scatter(1, index, 0.0)


def processors(config: DecodeConfig, prompt_length: int, seeds: list[int]) -> list[LogitsProcessor]:
    """The paper's chain: repetition penalty (generated only) -> temperature -> top-p -> sample."""
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    chain: list[LogitsProcessor] = [
        GeneratedTokensRepetitionPenalty(config.repetition_penalty, prompt_length)
    ]
    if config.do_sample:
        chain += [
            TemperatureLogitsWarper(config.temperature),
            TopPLogitsWarper(config.top_p),
            PerRowSampler(seeds),
        ]
    return chain
