"""The registry of LIMA's stages, in pipeline order.

Each entry names the module that defines `STAGE`; modules are imported only when a stage is
needed, so `lima validate` never imports torch or Ray.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from lima.errors import LimaError
from lima.stages.base import Stage, StageContext

__all__ = ["REGISTRY", "Stage", "StageContext", "get_stage", "pipeline", "topological"]

REGISTRY: dict[str, str] = {
    # name: module defining STAGE (added by each stage's package as it lands)
    "curate": "lima.stages.curate",
    "train": "lima.stages.train",
    "select": "lima.stages.select",
    "generate": "lima.stages.generate",
    "judge": "lima.stages.judge",
    "report": "lima.stages.report",
}


def get_stage(name: str) -> Stage:
    if name not in REGISTRY:
        known = ", ".join(REGISTRY) or "none"
        raise LimaError(f"unknown stage {name!r} (known: {known})")
    return importlib.import_module(REGISTRY[name]).STAGE


def topological(stages: Iterable[Stage]) -> list[Stage]:
    """Stages ordered so that every stage comes after its inputs; errors on cycles/unknowns."""
    by_name = {s.name: s for s in stages}
    ordered: list[Stage] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise LimaError(f"stage cycle: {' -> '.join((*chain, name))}")
        if name not in by_name:
            raise LimaError(f"stage {chain[-1]!r} needs unknown stage {name!r}")
        state[name] = "visiting"
        for dependency in by_name[name].inputs:
            visit(dependency, (*chain, name))
        state[name] = "done"
        ordered.append(by_name[name])

    for name in by_name:
        visit(name, ())
    return ordered


def pipeline() -> list[Stage]:
    """Every registered stage in DAG order."""
    return topological(get_stage(name) for name in REGISTRY)
