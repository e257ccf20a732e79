"""`select`: pick the fine-tuned checkpoint by judged answers on the dev set, not by perplexity.

LIMA Section 4 / Appendix B: checkpoints between the 5th and 10th epochs were compared on a
held-out development set of 50 prompts, because "perplexity does not correlate with generation
quality". Here every eligible epoch answers the first `spec.judge.selection_prompts` dev prompts;
each epoch is judged pairwise (both orders) against a fixed reference, the first eligible epoch;
the score is the win rate with ties counted half ((win + tie/2) / n, with a bootstrap CI over
prompts; the reference scores 0.5 by definition); the highest score wins and a draw goes to the
earlier epoch. Without enough valid verdicts the stage refuses to choose, unless
`spec.judge.selection_fallback` names a rule (`lima.judging.selection`). `selection.json`
records the choice with the evidence (per-epoch win/tie/loss with CIs, valid counts, the judge
and whether it is a proxy, any fallback, and the dev perplexity from the train metrics, for the
report's perplexity-vs-quality plot).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from lima.errors import StageError
from lima.generation.answers import answer_stats, write_jsonl
from lima.generation.checkpoints import eligible_models, epoch_perplexity, metric_records
from lima.generation.config import DecodeConfig
from lima.generation.pool import answer_many
from lima.generation.prompt_sets import PromptRecord, read_prompt_file
from lima.judging.selection import Decision, decide
from lima.results import SelectResult
from lima.stages._eval import (
    by_id,
    epoch_ref,
    generation_resources,
    progress_note,
)
from lima.stages.base import StageContext

log = logging.getLogger(__name__)
CRITERION = "win rate vs the reference epoch, ties count half: (win + tie/2) / n"


def dev_prompts(ctx: StageContext) -> list[PromptRecord]:
    path = ctx.input_file("curate", "dev.jsonl")
    records, rejected = read_prompt_file(path, limit=ctx.spec.judge.selection_prompts)
    if rejected:
        write_jsonl(ctx.output_dir / "rejected.jsonl", [r.__dict__ for r in rejected])
    if not records:
        raise StageError(f"checkpoint selection needs dev prompts; {path.name} has none usable")
    return records


def run(ctx: StageContext) -> SelectResult:
    from lima.judging import make_judge

    spec = ctx.spec
    judge = make_judge(spec, ctx.settings, ctx.store)  # a misconfigured judge fails before work
    prompts = dev_prompts(ctx)
    models = eligible_models(ctx.inputs["train"], spec.train.eligible_epochs)
    answers = _answer_dev_prompts(ctx, models, prompts)
    perplexity = epoch_perplexity(metric_records(ctx.store, ctx.inputs["train"]))
    reference = min(models)
    rows, verdict_rows = [], []
    for epoch in models:
        row: dict[str, Any] = {
            "epoch": epoch,
            "model_dir": models[epoch],
            "dev_perplexity": perplexity.get(epoch),
            "answers": answer_stats(list(answers[epoch].values())),
        }
        if epoch == reference or len(models) == 1:
            row.update({"reference": True, "score": 0.5, "wtl": None, "asked": 0})
        else:
            row.update(_judged(ctx, judge, prompts, answers[epoch], answers[reference]))
            verdict_rows += [
                {"epoch": epoch, "reference_epoch": reference, **v} for v in row.pop("verdicts")
            ]
        rows.append(row)
        ctx.progress(completed=len(rows), total=len(models), note=f"judged epoch {epoch}")
    write_jsonl(ctx.output_dir / "verdicts.jsonl", verdict_rows)
    decision = decide(
        rows, judge.name, spec.judge.selection_min_valid, spec.judge.selection_fallback
    )
    _write_selection(ctx, decision, rows, reference, judge, len(prompts))
    return SelectResult(
        selected_epoch=decision.row["epoch"],
        score=decision.row["score"],
        judge=judge.name,
        proxy=judge.proxy,
        epochs=[r["epoch"] for r in rows],
        fallback=decision.fallback,
        fallback_reason=decision.reason if decision.fallback else None,
    )


def _answer_dev_prompts(
    ctx: StageContext, models: dict[int, str], prompts: list[PromptRecord]
) -> dict[int, dict[str, dict[str, Any]]]:
    spec = ctx.spec
    jobs = [(epoch_ref(ctx, epoch, folder), prompts) for epoch, folder in models.items()]
    answered = answer_many(
        jobs,
        DecodeConfig.from_spec(spec.generate),
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
    return answers


def _judged(
    ctx: StageContext,
    judge: Any,
    prompts: list[PromptRecord],
    mine: dict[str, dict[str, Any]],
    reference: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """One compared epoch: its verdicts against the reference epoch and their summary."""
    from lima.judging import items_for, position_summary, win_tie_loss

    items = items_for(prompts, mine, reference)
    verdicts = judge.judge("pairwise", items)
    spec = ctx.spec.judge
    wtl = win_tie_loss(verdicts, spec.bootstrap_resamples, spec.seed)
    wtl.update(position_summary(verdicts, judge.symmetric))
    return {
        "reference": False,
        "score": wtl["score"],
        "wtl": wtl,
        "asked": len(items),
        "verdicts": [v.to_dict() for v in verdicts],
    }


def _write_selection(
    ctx: StageContext,
    decision: Decision,
    rows: list[dict[str, Any]],
    reference: int,
    judge: Any,
    dev_prompts: int,
) -> None:
    selection = {
        "selected_epoch": decision.row["epoch"],
        "model_dir": decision.row["model_dir"],
        "reference_epoch": reference,
        "criterion": CRITERION,
        "fallback": decision.fallback,
        "fallback_reason": decision.reason if decision.fallback else None,
        "note": None if decision.fallback else decision.reason,
        "judge": judge.name,
        "proxy": judge.proxy,
        "min_valid_share": ctx.spec.judge.selection_min_valid,
        "dev_prompts": dev_prompts,
        "train_artifact": ctx.inputs["train"].uri,
        "epochs": rows,
    }
    if decision.fallback:
        log.warning("checkpoint selection fell back to %s: %s", decision.fallback, decision.reason)
    (ctx.output_dir / "selection.json").write_text(json.dumps(selection, indent=2) + "\n")
