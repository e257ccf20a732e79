"""`judge`: the paper's questions about the generate stage's answers, aggregated.

Per prompt set:
- `pairwise` (both orders, disagreement = tie): the fine-tuned model vs every baseline, on the
  turns both answered; win/tie/loss with bootstrap 95% CIs over prompts and the judge's
  position consistency (LIMA Figure 1).
- `absolute` (Fail / Pass / Excellent, LIMA Figure 3), `likert` (1-6 helpfulness, the
  ablations' scale) and `single` (MT-Bench's 1-10): distributions (and means) for every system.
- `safety`: share of safe answers on the prompts tagged (or categorised) `safety`.
Turn k of a multi-turn prompt is judged with both whole conversations before it; the bootstrap
resamples prompts (every turn of a prompt moves together). Invalid verdicts are excluded from
every rate and counted. Results computed with the embedded reference judge carry `"proxy": true`
and position consistency "n/a" (the proxy is symmetric by construction). Run facts (cache hits)
go to the stage summary, never into the hashed files.

Artifact: `verdicts.jsonl` (every verdict with set/protocol/system/baseline) and `results.json`.
"""

from __future__ import annotations

import json
from typing import Any

from lima.generation.answers import read_jsonl, write_jsonl
from lima.generation.prompt_sets import PromptRecord
from lima.results import Headline, JudgeResult
from lima.stages._eval import by_id
from lima.stages.base import StageContext

SAFETY_TAG = "safety"


def _protocol_names(spec: Any) -> list[str]:
    return [getattr(p, "value", p) for p in spec.judge.protocols]


class _SetJudging:
    """Judging one prompt set: its prompts, every system's answers, the verdict rows."""

    def __init__(self, ctx: StageContext, judge: Any, name: str, folder: Any, systems: list[str]):
        self.ctx, self.judge, self.name = ctx, judge, name
        self.prompts = [
            PromptRecord.from_dict(r) for r in read_jsonl(folder / "prompts" / f"{name}.jsonl")
        ]
        self.answers = {
            system: by_id(read_jsonl(folder / "answers" / name / f"{system}.jsonl"))
            for system in systems
        }
        self.rows: list[dict[str, Any]] = []

    def ask(self, protocol: str, system: str, baseline: str | None, prompts: list[PromptRecord]):
        others = self.answers[baseline] if baseline else None
        from lima.judging import items_for

        items = items_for(prompts, self.answers[system], others)
        verdicts = self.judge.judge(protocol, items) if items else []
        self.rows += [
            {"set": self.name, "system": system, "baseline": baseline, **v.to_dict()}
            for v in verdicts
        ]
        return items, verdicts

    def pairwise(self, system: str, baseline: str) -> dict[str, Any]:
        from lima.judging import position_summary, win_tie_loss

        items, verdicts = self.ask("pairwise", system, baseline, self.prompts)
        spec = self.ctx.spec.judge
        result = win_tie_loss(verdicts, spec.bootstrap_resamples, spec.seed)
        result.update(position_summary(verdicts, self.judge.symmetric))
        result["not_compared"] = _turns(self.prompts) - len(items)
        return result

    def rated(self, protocol: str, system: str, prompts: list[PromptRecord]) -> dict[str, Any]:
        from lima.judging import distribution
        from lima.judging.types import SCORED, VALUES

        _, verdicts = self.ask(protocol, system, None, prompts)
        result = distribution(verdicts)
        if not verdicts:  # nothing asked: still name every label (with no share)
            labels = [str(v) for v in VALUES[protocol]]
            result.update(counts=dict.fromkeys(labels, 0), shares=dict.fromkeys(labels))
            if protocol in SCORED:
                result["mean"] = None
        result["protocol"] = protocol
        return result


def _turns(prompts: list[PromptRecord]) -> int:
    return sum(len(p.turns) for p in prompts)


def _safety_prompts(prompts: list[PromptRecord]) -> list[PromptRecord]:
    return [p for p in prompts if SAFETY_TAG in p.tags or p.category == SAFETY_TAG]


def judge_set(job: _SetJudging, protocols: list[str], system: str, baselines: list[str]) -> dict:
    result: dict[str, Any] = {"prompts": len(job.prompts), "turns": _turns(job.prompts)}
    everyone = [system, *baselines]
    if "pairwise" in protocols:
        result["pairwise"] = {b: job.pairwise(system, b) for b in baselines}
    for protocol in ("absolute", "likert", "single"):
        if protocol in protocols:
            result[protocol] = {s: job.rated(protocol, s, job.prompts) for s in everyone}
    if "safety" in protocols:
        sensitive = _safety_prompts(job.prompts)
        result["safety"] = {
            s: {**job.rated("safety", s, sensitive), "tagged_prompts": len(sensitive)}
            for s in everyone
        }
    return result


def run(ctx: StageContext) -> JudgeResult:
    from lima.judging import make_judge

    folder = ctx.input_dir("generate")
    generated = json.loads((folder / "generate.json").read_text())
    system = generated["system"]
    baselines = [b["name"] for b in generated["baselines"]]
    judge = make_judge(ctx.spec, ctx.settings, ctx.store)
    protocols = _protocol_names(ctx.spec)
    sets, rows = {}, []
    for index, name in enumerate(generated["sets"]):
        ctx.progress(completed=index, total=len(generated["sets"]), note=f"judging {name}")
        job = _SetJudging(ctx, judge, name, folder, [system, *baselines])
        sets[name] = judge_set(job, protocols, system, baselines)
        rows += job.rows
    invalid = sum(1 for r in rows if not r["valid"])
    results = {
        "judge": judge.name,
        "proxy": judge.proxy,
        "system": system,
        "baselines": baselines,
        "protocols": protocols,
        "selected_epoch": generated["selected_epoch"],
        "verdicts": len(rows),
        "invalid": invalid,
        "prompt_set": ctx.spec.judge.prompts,
        "symmetric_judge": judge.symmetric,
        "sets": sets,
    }
    write_jsonl(ctx.output_dir / "verdicts.jsonl", rows)
    (ctx.output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return JudgeResult(
        judge=judge.name,
        proxy=judge.proxy,
        verdicts=len(rows),
        invalid=invalid,
        headline=headline(sets, baselines),
        cache_hits=judge.hits,
        cache_misses=judge.misses,
        bad_cache_entries=len(judge.bad_entries),
    )


def headline(sets: dict[str, Any], baselines: list[str]) -> Headline | None:
    """The fine-tuned model against the first baseline on the first prompt set (pairwise)."""
    for name, judged in sets.items():
        pairwise = judged.get("pairwise") or {}
        for baseline in baselines:
            wtl = pairwise.get(baseline)
            if wtl is not None:
                return Headline(
                    prompt_set=name,
                    baseline=baseline,
                    n=wtl["n"],
                    win=wtl["win"],
                    tie=wtl["tie"],
                    loss=wtl["loss"],
                    win_ci=tuple(wtl["ci"]["win"]),
                )
    return None
