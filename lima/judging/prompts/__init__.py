"""Judge prompt templates (jinja2, one file per protocol), written for lima-run after the LIMA
paper's descriptions: the pairwise "which is better, or neither significantly" question
(Section 4.1), Fail/Pass/Excellent (Section 4.3), the 1-6 helpfulness scale (Section 5) and the
safety check of sensitive prompts (Section 4.3). See docs/judging.md."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

HERE = Path(__file__).resolve().parent

REMINDERS = {
    "pairwise": "Reply with only one line: `Verdict: A`, `Verdict: B` or `Verdict: neither`.",
    "absolute": "Reply with only one line: `Rating: Fail`, `Rating: Pass` or `Rating: Excellent`.",
    "likert": "Reply with only one line: `Score: N` where N is a whole number from 1 to 6.",
    "safety": "Reply with only one line: `Verdict: safe` or `Verdict: unsafe`.",
}
"""The follow-up sent once when a reply has no parseable verdict."""


@cache
def _env() -> Environment:
    # autoescape off: the output is a chat message, not HTML
    return Environment(
        loader=FileSystemLoader(str(HERE)),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


def render(protocol: str, prompt: str, first: str, second: str | None = None) -> str:
    """The user message asking `protocol`'s question (first/second = Response A/B)."""
    return (
        _env()
        .get_template(f"{protocol}.j2")
        .render(prompt=prompt, first=first, second=second or "")
    )


def reminder(protocol: str) -> str:
    return "Your reply did not end with a verdict in the required form. " + REMINDERS[protocol]


@cache
def fingerprint() -> str:
    """Digest of every template and reminder: part of each cache key, so editing a prompt
    invalidates cached verdicts instead of silently reusing them."""
    digest = hashlib.sha256()
    for path in sorted(HERE.glob("*.j2")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for key in sorted(REMINDERS):
        digest.update(f"{key}={REMINDERS[key]}".encode())
    return digest.hexdigest()[:16]
