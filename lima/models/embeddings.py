"""Starting values of the embedding (and output) rows of chat tokens added to a base vocabulary.

The mean embedding is a poor start for the EOT: its output row gives log P(EOT) ~ -18 at answer
ends, and at LIMA's learning rate (1e-5) it barely moves in 15 epochs, so the fine-tuned model never
stops. The EOT plays the role of EOS (paper, Section 3), so its rows start as copies of the base's
own EOS rows: the base already predicts EOS where an answer ends, and the copy inherits that
(log P(EOT) starts near log P(EOS) - log 2). A marker (`<|user|>`, `<|assistant|>`) starts as the
mean of the embeddings of the pieces of its name ("user", "assistant"), which tells the model more
than the vocabulary mean; the vocabulary mean is the fallback when neither applies.

Tied input/output embeddings (SmolLM2, Gemma) share one matrix: it is written once.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from lima.models.chat import chat_token_texts


def _partitioned(param: Any) -> bool:
    return hasattr(param, "ds_id")  # DeepSpeed ZeRO-3 marks partitioned parameters this way


def embedding_matrices(model: Any) -> list[Any]:
    """The input embedding and, when not tied to it, the output head weight."""
    weights = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight is not weights[0]:
        weights.append(head.weight)
    return weights


def source_rows(tokenizer: Any, spec: Any, first_new: int) -> dict[int, list[int]]:
    """{row of an added chat token: base rows whose mean it starts from ([] = every base row)}.

    `first_new` is the tokenizer's length before the chat tokens were added: ids below it are the
    base's own tokens (trained rows, kept as they are)."""
    user, assistant, eot = chat_token_texts(spec)
    eos = tokenizer.eos_token_id
    plan: dict[int, list[int]] = {}
    for text in (user, assistant, eot):
        row = tokenizer.convert_tokens_to_ids(text)
        if row is None or row < first_new:
            continue
        if text == eot and eos is not None and eos < first_new:
            plan[row] = [int(eos)]
        else:
            pieces = tokenizer.encode(text.strip("<>|") or text, add_special_tokens=False)
            plan[row] = [p for p in pieces if p < first_new]
    return plan


def init_new_rows(model: Any, tokenizer: Any, spec: Any, first_new: int) -> dict[int, list[int]]:
    """Set the rows of the chat tokens added after id `first_new - 1` (gathered first under
    ZeRO-3) in the input embedding and an untied output head; returns the plan used."""
    import torch

    plan = source_rows(tokenizer, spec, first_new)
    weights = embedding_matrices(model)
    gather = nullcontext()
    if any(_partitioned(w) for w in weights):
        import deepspeed

        gather = deepspeed.zero.GatheredParameters(weights, modifier_rank=0)
    with gather, torch.no_grad():
        for weight in weights:
            mean = weight[:first_new].mean(dim=0)
            for row, sources in plan.items():
                weight[row] = weight[sources].mean(dim=0) if sources else mean
    return plan
