"""Every variant patch the sweep docs show (docs/sweeps.md, the spec's docstrings and so the CRD
and docs/experiment-reference.md) is one a user can paste: it validates as a variant."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import lima.spec.sweep
import lima.sweep
from lima.errors import SpecError
from lima.spec.load import parse_experiment
from lima.spec.sweep import SweepSpec, Variant

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"```ya?ml\n(.*?)```", re.S)
FLOW_MAPPING = re.compile(r"`(\{[^`]*\})`")  # an inline `{...}` in prose or a docstring


def _variants(node: Any) -> list[dict[str, Any]]:
    """Every `sweep.variants` entry in a YAML document (at any depth)."""
    found = []
    if isinstance(node, dict):
        sweep = node.get("sweep")
        if isinstance(sweep, dict):
            found += [v for v in sweep.get("variants") or [] if isinstance(v, dict)]
        for value in node.values():
            found += _variants(value)
    elif isinstance(node, list):
        for value in node:
            found += _variants(value)
    return found


def _docstrings() -> str:
    texts = [inspect.getdoc(lima.spec.sweep) or "", inspect.getdoc(lima.sweep) or ""]
    for model in (Variant, SweepSpec):
        texts.append(inspect.getdoc(model) or "")
        texts += [f.description or "" for f in model.model_fields.values()]
    return "\n".join(texts)


def shown_patches() -> list[tuple[str, dict[str, Any]]]:
    """(where, patch) for each patch shown: variants in the YAML blocks of docs/sweeps.md and
    the inline `{...}` patches of docs/sweeps.md's prose and the sweep docstrings."""
    shown = []
    doc = (REPO / "docs/sweeps.md").read_text()
    for block in FENCE.findall(doc):
        for variant in _variants(yaml.safe_load(block)):
            shown.append((f"docs/sweeps.md: variant {variant['name']}", variant.get("patch", {})))
    for where, text in (("docs/sweeps.md", FENCE.sub("", doc)), ("docstrings", _docstrings())):
        for flow in FLOW_MAPPING.findall(text):
            patch = yaml.safe_load(flow)
            if isinstance(patch, dict):
                shown.append((f"{where}: {flow}", patch))
    return shown


SHOWN = shown_patches()


def validate_patch(patch: dict[str, Any]) -> None:
    """Raise SpecError unless `patch` makes a valid variant of the ready-made diversity sweep."""
    document = yaml.safe_load((REPO / "examples/ablation-diversity.yaml").read_text())
    document["spec"]["sweep"]["variants"] = [{"name": "base"}, {"name": "shown", "patch": patch}]
    document["spec"]["sweep"].pop("baseline", None)
    parse_experiment(document)


def test_the_docs_show_patches_at_all() -> None:
    wheres = [where for where, _ in SHOWN]
    assert sum(w.startswith("docs/sweeps.md: variant") for w in wheres) >= 5, wheres
    assert any(w.startswith("docstrings: {train") for w in wheres), wheres


@pytest.mark.parametrize(("where", "patch"), SHOWN, ids=[w for w, _ in SHOWN])
def test_every_patch_shown_validates_as_a_variant(where: str, patch: dict[str, Any]) -> None:
    try:
        validate_patch(patch)
    except SpecError as error:
        pytest.fail(f"{where}: {error}")


def test_the_check_refuses_a_wrong_patch() -> None:
    """What Variant.patch's docstring used to show: `data.selection` has no `max_examples`."""
    with pytest.raises(SpecError, match="max_examples"):
        validate_patch({"data": {"selection": {"max_examples": 2000}}})
