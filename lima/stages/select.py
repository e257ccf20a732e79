"""`select`: pick the fine-tuned checkpoint by judged answers on the dev set, not by perplexity.

LIMA Section 4 / Appendix B: checkpoints between the 5th and 10th epochs were compared on a
held-out development set of 50 prompts, because "perplexity does not correlate with generation
quality". Here every eligible epoch answers the first `spec.judge.selection_prompts` dev prompts;
each epoch is judged pairwise (both orders) against a fixed reference, the first eligible epoch;
the score is the win rate with ties counted half ((win + tie/2) / n, the reference scores 0.5 by
definition); the highest score wins and a draw goes to the earlier epoch. `selection.json`
records the choice with the evidence (per-epoch win/tie/loss with bootstrap CIs and the dev
perplexity from the train metrics, for the report's perplexity-vs-quality plot).
"""

from __future__ import annotations

import json
from typing import Any

from lima.errors import StageError
from lima.generation.answers import answer_stats, judge_items, write_jsonl
from lima.generation.checkpoints import eligible_models, epoch_perplexity, metric_records
from lima.generation.config import DecodeConfig
from lima.generation.pool import answer_many
from lima.generation.prompts import PromptRecord, read_prompt_file
from lima.stages._eval import (
    by_id,
    decode_config,
    epoch_ref,
    generation_resources,
    judge_config,
    progress_note,
)
from lima.stages.base import Stage, StageContext

CRITERION = "win rate vs the reference epoch, ties count half: (win + tie/2) / n"


def _config(experiment: Any) -> dict[str, Any]:
    return {
        "decode": decode_config(experiment),
        "judge": judge_config(experiment, {"protocols", "baselines"}),
        "eligible_epochs": sorted(set(experiment.spec.train.eligible_epochs)),
    }


def dev_prompts(ctx: StageContext) -> list[PromptRecord]:
    path = ctx.input_file("curate", "dev.jsonl")
    records, rejected = read_prompt_file(path, limit=ctx.spec.judge.selection_prompts)
    if rejected:
        write_jsonl(ctx.output_dir / "rejected.jsonl", [r.__dict__ for r in rejected])
    if not records:
        raise StageError(f"checkpoint selection needs dev prompts; {path.name} has none usable")
    return records


def score(wtl: dict[str, Any]) -> float | None:
    if not wtl["n"]:
        return None
    return wtl["win"] + 0.5 * wtl["tie"]


def choose(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Highest score; a draw goes to the earlier epoch (rows are in epoch order)."""
    scored = [r for r in rows if r["score"] is not None]
    if not scored:
        raise StageError(
            "no epoch got a valid verdict; see verdicts.jsonl for the raw judge output"
        )
    return max(scored, key=lambda r: (r["score"], -r["epoch"]))


def run(ctx: StageContext) -> dict[str, Any]:
    from lima.judging import make_judge, position_consistency, win_tie_loss

    spec = ctx.spec
    prompts = dev_prompts(ctx)
    models = eligible_models(ctx.inputs["train"], spec.train.eligible_epochs)
    decode = DecodeConfig.from_spec(spec.generate)
    jobs = [(epoch_ref(ctx, epoch, folder), prompts) for epoch, folder in models.items()]
    answered = answer_many(
        jobs,
        decode,
        generation_resources(ctx),
        settings=ctx.settings,
        storage=spec.storage,
        engine=spec.generate.engine,
        progress=progress_note(ctx, "dev answers of every epoch"),
    )
    answers: dict[int, dict[str, dict[str, Any]]] = {}
    for epoch, records in zip(models, answered, strict=True):
        for record in records:
            record["system"] = f"epoch-{epoch}"
        write_jsonl(ctx.output_dir / "answers" / f"epoch-{epoch}.jsonl", records)
        answers[epoch] = by_id(records)

    reference = min(models)
    judge = make_judge(spec, ctx.settings, ctx.store)
    perplexity = epoch_perplexity(metric_records(ctx.store, ctx.inputs["train"]))
    rows, verdict_rows = [], []
    for epoch in models:
        row: dict[str, Any] = {
            "epoch": epoch,
            "model_dir": models[epoch],
            "dev_perplexity": perplexity.get(epoch),
            "answers": answer_stats(list(answers[epoch].values())),
        }
        if epoch == reference or len(models) == 1:
            row.update({"reference": True, "score": 0.5, "wtl": None})
        else:
            items = judge_items(prompts, answers[epoch], answers[reference])
            verdicts = judge.judge("pairwise", items)
            verdict_rows += [
                {"epoch": epoch, "reference_epoch": reference, **v.to_dict()} for v in verdicts
            ]
            wtl = win_tie_loss(verdicts, spec.judge.bootstrap_resamples, spec.judge.seed)
            wtl["position_consistency"] = position_consistency(verdicts)
            row.update({"reference": False, "score": score(wtl), "wtl": wtl})
        rows.append(row)
        ctx.progress(completed=len(rows), total=len(models), note=f"judged epoch {epoch}")

    best = choose(rows)
    selection = {
        "selected_epoch": best["epoch"],
        "model_dir": best["model_dir"],
        "reference_epoch": reference,
        "criterion": CRITERION,
        "judge": judge.name,
        "proxy": judge.proxy,
        "dev_prompts": len(prompts),
        "train_artifact": ctx.inputs["train"].uri,
        "epochs": rows,
    }
    (ctx.output_dir / "selection.json").write_text(json.dumps(selection, indent=2) + "\n")
    write_jsonl(ctx.output_dir / "verdicts.jsonl", verdict_rows)
    return {
        "selected_epoch": best["epoch"],
        "score": best["score"],
        "judge": judge.name,
        "proxy": judge.proxy,
        "epochs": [r["epoch"] for r in rows],
    }


STAGE = Stage(
    name="select",
    version="1",
    inputs=("curate", "train"),
    config=_config,
    run=run,
    description="answer dev prompts with each eligible epoch; pick the best by judged win rate",
)
