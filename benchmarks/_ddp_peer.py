"""Peer of the train benchmark: plain PyTorch DDP under torchrun, the same model, examples and
micro-batch plan as the train stage (gloo, 1 thread per process, AdamW, clipping, linear LR).

    torchrun --nproc_per_node 2 benchmarks/_ddp_peer.py <config.json>

config.json (written by train_throughput.py): {"base": folder, "examples": [[ids, labels]...],
"micro", "accumulation", "epochs", "seed", "pad_id", "lr", "final_lr", "betas", "weight_decay",
"grad_clip", "dropout", "out": path}. Rank 0 writes {"records": [{"tokens", "seconds"}...]}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from transformers import AutoModelForCausalLM

    from lima.train.batching import collate, plan_epoch
    from lima.train.data import Example
    from lima.train.dropout import add_residual_dropout
    from lima.train.schedule import linear_lr

    config = json.loads(Path(sys.argv[1]).read_text())
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(config["seed"])
    model = AutoModelForCausalLM.from_pretrained(config["base"], dtype=torch.float32)
    add_residual_dropout(model, config["dropout"])
    model.train()
    ddp = DistributedDataParallel(model)
    examples = [Example(*e) for e in config["examples"]]
    lengths = [len(e) for e in examples]
    optimizer = torch.optim.AdamW(
        ddp.parameters(),
        lr=config["lr"],
        betas=tuple(config["betas"]),
        weight_decay=config["weight_decay"],
    )

    def plan(epoch: int):
        return plan_epoch(
            lengths,
            micro=config["micro"],
            accumulation=config["accumulation"],
            workers=world,
            seed=config["seed"],
            epoch=epoch,
        )

    total, step, records = plan(1).steps * config["epochs"], 0, []
    for epoch in range(1, config["epochs"] + 1):
        epoch_plan = plan(epoch)
        for index, micro_batches in enumerate(epoch_plan.per_rank[rank]):
            started, tokens = time.perf_counter(), 0
            for group in optimizer.param_groups:
                group["lr"] = linear_lr(step, total, config["lr"], config["final_lr"])
            for position, micro in enumerate(micro_batches):
                batch = collate(
                    [examples[i] for i in (micro or epoch_plan.filler)], config["pad_id"]
                )
                weight = epoch_plan.weight(index) if micro else 0.0
                last = position == len(micro_batches) - 1
                context = ddp.no_sync() if not last else torch.enable_grad()
                with context:
                    loss = ddp(**batch).loss * weight / len(micro_batches)
                    loss.backward()
                if micro:
                    tokens += int(batch["attention_mask"].sum())
            torch.nn.utils.clip_grad_norm_(ddp.parameters(), config["grad_clip"])
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            counts = torch.tensor([float(tokens)])
            dist.all_reduce(counts)
            records.append({"tokens": int(counts.item()), "seconds": time.perf_counter() - started})
    if rank == 0:
        Path(config["out"]).write_text(json.dumps({"records": records}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
