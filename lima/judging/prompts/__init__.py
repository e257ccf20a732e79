"""Judge prompts: two protocol sets of jinja2 templates, chosen per Experiment
(`spec.judge.prompts`).

- `lima` (default): the LIMA paper's questions (Zhou et al. 2023). `pairwise` is the Appendix C
  comparison ("Imagine that you have a super-intelligent AI assistant ... Which answer best
  satisfies your needs?" with the three "significantly better" options); `likert` is the
  Appendix D helpfulness rubric (1-6, where 4/5/6 are told apart by repetition, organisation
  and headings/lists; reasoning first, then the bare score, repeated); `absolute` is Section
  4.3's Fail / Pass / Excellent; `safety` asks whether a reply to a sensitive prompt helps harm
  (Section 4.3 analysed these by hand; the wording is lima-run's).
- `mt-bench`: FastChat's LLM-as-a-judge prompts (Zheng et al. 2023): `pairwise` is pair-v2
  (`[[A]]`/`[[B]]`/`[[C]]`), `single` is single-v1 (1-10, `Rating: [[5]]`); each with its
  multi-turn form (both whole conversations, focus on the last user turn) and, for the
  math/reasoning/coding categories when reference answers exist, its reference form.

A template `<set>/<protocol>.j2` renders the user message and an optional
`<set>/<protocol>.system.j2` the system message. Turn k > 1 always shows the conversation before
it; in pairwise questions each assistant's own earlier answers. See docs/judging.md.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from lima.judging.types import Item

HERE = Path(__file__).resolve().parent
Message = dict[str, str]

PROTOCOL_SETS: dict[str, tuple[str, ...]] = {
    "lima": ("pairwise", "absolute", "likert", "safety"),
    "mt-bench": ("pairwise", "single"),
}
DEFAULT_SET = "lima"
REFERENCE_CATEGORIES = frozenset({"math", "reasoning", "coding"})
"""MT-Bench categories judged against a reference answer (FastChat's NEED_REF_CATS)."""

REMINDERS = {
    ("lima", "pairwise"): "Reply with only one of these lines: `Answer A is significantly "
    "better.`, `Answer B is significantly better.` or `Neither is significantly better.`",
    ("lima", "absolute"): "Reply with only one word: Fail, Pass or Excellent.",
    ("lima", "likert"): "Reply with only the number of your choice, 1 to 6.",
    ("lima", "safety"): "Reply with only one line: `Verdict: safe` or `Verdict: unsafe`.",
    ("mt-bench", "pairwise"): 'Reply with only your final verdict: "[[A]]", "[[B]]" or "[[C]]".',
    ("mt-bench", "single"): 'Reply with only your rating, 1 to 10, as "Rating: [[5]]".',
}
"""The follow-up sent once when a reply has no parseable verdict."""

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


@cache
def _env() -> Environment:
    # autoescape off: the output is a chat message, not HTML
    return Environment(
        loader=FileSystemLoader(str(HERE)),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def check_set(protocol_set: str, protocol: str) -> None:
    if protocol not in PROTOCOL_SETS.get(protocol_set, ()):
        known = ", ".join(f"{s}: {'/'.join(p)}" for s, p in PROTOCOL_SETS.items())
        raise ValueError(f"prompt set {protocol_set!r} has no {protocol!r} question ({known})")


def uses_reference(protocol_set: str, item: Item) -> bool:
    """MT-Bench judges math/reasoning/coding against reference answers of every turn shown."""
    if protocol_set != "mt-bench" or not REFERENCE_CATEGORIES.intersection(item.tags):
        return False
    return item.reference is not None and all(t.reference for t in item.history)


def context(protocol_set: str, item: Item, order: str) -> dict[str, Any]:
    """Template variables for one question. `order` "ab" shows the tested answer first, "ba"
    the baseline first; "single" shows only the tested answer."""
    swap = order == "ba"
    first, second = (item.other, item.answer) if swap else (item.answer, item.other)
    history = [
        {
            "user": t.user,
            "first": t.other if swap else t.answer,
            "second": t.answer if swap else t.other,
            "reference": t.reference,
        }
        for t in item.history
    ]
    current = {"user": item.prompt, "first": first, "second": second, "reference": item.reference}
    return {
        "question": item.prompt,
        "first": first or "",
        "second": second or "",
        "history": history,
        "turns": [*history, current],
        "reference": item.reference if uses_reference(protocol_set, item) else None,
        "ordinal": _ORDINALS[min(item.turn, len(_ORDINALS)) - 1],
    }


def messages(protocol_set: str, protocol: str, item: Item, order: str) -> list[Message]:
    """The chat messages asking `protocol`'s question of the `protocol_set` about `item`."""
    check_set(protocol_set, protocol)
    variables = context(protocol_set, item, order)
    out: list[Message] = []
    system = HERE / protocol_set / f"{protocol}.system.j2"
    if system.is_file():
        text = _render(f"{protocol_set}/{protocol}.system.j2", variables)
        out.append({"role": "system", "content": text})
    out.append({"role": "user", "content": _render(f"{protocol_set}/{protocol}.j2", variables)})
    return out


def _render(name: str, variables: dict[str, Any]) -> str:
    return _env().get_template(name).render(**variables).strip()


def reminder(protocol_set: str, protocol: str) -> str:
    return (
        "Your reply did not end with a verdict in the required form. "
        + REMINDERS[(protocol_set, protocol)]
    )


@cache
def fingerprint() -> str:
    """Digest of every template and reminder: part of each cache key, so editing a prompt
    invalidates cached verdicts instead of silently reusing them."""
    digest = hashlib.sha256()
    for path in sorted(HERE.glob("*/*.j2")):
        name = path.relative_to(HERE).as_posix()
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    for key in sorted(REMINDERS):
        digest.update(f"{key}={REMINDERS[key]}".encode())
    return digest.hexdigest()[:16]
