"""Length-grouped micro-batches: padding stays small and examples never attend to each other.

Each micro-batch holds examples of similar length (sorted by length, seeded random tie-break),
padded to its longest with the attention mask hiding the padding. We do not pack several
examples into one row: on CPU there is no varlen attention kernel, and a 4D block mask costs
more than the little padding that grouping leaves. The order of micro-batches is shuffled per
epoch so consecutive optimizer steps still mix lengths.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from lima.models.chat import IGNORE_INDEX
from lima.train.data import Example


@dataclass(frozen=True)
class EpochPlan:
    steps: int
    """Optimizer steps in the epoch."""
    per_rank: list[list[list[list[int]]]]
    """per_rank[rank][step] = the micro-batches (example indices) of that rank for that step;
    an empty micro-batch is a filler pass (see `plan_epoch`)."""
    real: list[int]
    """Micro-batches holding examples in each step, over all ranks."""
    filler: list[int]
    """Examples run by filler passes (their loss is weighted 0)."""
    slots: int
    """Micro-batch passes per step over all ranks (workers x accumulation)."""

    def weight(self, step: int) -> float:
        """Loss weight of a real micro-batch of `step`, so that the step's gradient is the mean
        over its real micro-batches although fillers count in DeepSpeed's averaging."""
        return self.slots / self.real[step]


def micro_batches(
    lengths: list[int], micro: int, seed: int, epoch: int, grouped: bool = True
) -> list[list[int]]:
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if grouped:
        order.sort(key=lambda i: lengths[i])  # stable sort keeps the random tie-break
    batches = [order[i : i + micro] for i in range(0, len(order), micro)]
    rng.shuffle(batches)
    return batches


def plan_epoch(
    lengths: list[int],
    *,
    micro: int,
    accumulation: int,
    workers: int,
    seed: int,
    epoch: int,
    grouped: bool = True,
) -> EpochPlan:
    """Split one epoch into optimizer steps of `workers x accumulation` micro-batches.

    Every example is seen exactly once per epoch. When the last step has fewer micro-batches
    than slots, the empty slots become filler passes (a real micro-batch whose loss is weighted
    0): every rank still runs the same number of forward passes, which ZeRO-3's collective
    parameter gathering and DeepSpeed's fixed gradient accumulation need.
    """
    batches = micro_batches(lengths, micro, seed, epoch, grouped)
    slots = workers * accumulation
    steps = max(1, -(-len(batches) // slots))
    per_rank: list[list[list[list[int]]]] = [[] for _ in range(workers)]
    real = []
    for step in range(steps):
        chunk = batches[step * slots : (step + 1) * slots]
        real.append(len(chunk))
        chunk = chunk + [[] for _ in range(slots - len(chunk))]
        for rank in range(workers):
            per_rank[rank].append(chunk[rank::workers])
    return EpochPlan(steps, per_rank, real, batches[0] if batches else [], slots)


def non_padding_fraction(batches: list[list[int]], lengths: list[int]) -> float:
    real = sum(lengths[i] for batch in batches for i in batch)
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches if batch)
    return real / padded if padded else 1.0


def collate(examples: list[Example], pad_id: int):
    """Right-padded tensors: input_ids, attention_mask, labels (-100 on padding)."""
    import torch

    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
