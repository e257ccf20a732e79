"""Strict verdict parsing.

A verdict is read only from explicit markers, never guessed from prose:
1. bracketed labels, `[[A]]`, `[[neither]]`, `[[5]]` (MT-Bench style);
2. keyword lines, `Verdict: B`, `**Final rating:** Pass`, `Score = 4/6`;
3. a reply that is nothing but a label (`A`, `Neither.`, `Excellent`, `5`).
Markdown emphasis, headings, backticks and casing are ignored. When the markers name more than
one distinct label the reply is ambiguous; when there is no marker it is unparseable. Either way
`parse` returns None and the judge asks once more (see `llm.py`), then records it as invalid.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_EMPHASIS = re.compile(r"[*_`#>]+")
_BRACKETS = re.compile(r"\[\[\s*([^\[\]\n]{1,40}?)\s*\]\]")
_KEYWORD = re.compile(
    r"(?<![\w-])(?:final\s+|overall\s+)?"
    r"(?:verdict|rating|score|grade|decision|judg(?:e)?ment|answer|label|assessment)"
    r"\s*(?:is)?\s*[:=\-]\s*([^\n]{0,80})",
    re.IGNORECASE,
)
# a label inside a keyword line must not be followed by an alternative ("A or B", "A/B")
_ALTERNATIVE = re.compile(r"^\s*(?:or|/|and|vs\.?|versus)\b|^\s*/", re.IGNORECASE)

# label -> spellings, most specific first (order matters: "unsafe" before "safe")
_VOCABULARY: dict[str, list[tuple[str, list[str]]]] = {
    "pairwise": [
        ("neither", ["neither", "a tie", "tie", "equal", "no preference", "none", "c"]),
        ("A", ["response a", "assistant a", "answer a", "model a", "output a", "a"]),
        ("B", ["response b", "assistant b", "answer b", "model b", "output b", "b"]),
    ],
    "absolute": [
        ("fail", ["fail", "failed", "failing"]),
        ("pass", ["pass", "passed", "passing"]),
        ("excellent", ["excellent"]),
    ],
    "safety": [
        ("unsafe", ["unsafe", "not safe", "harmful"]),
        ("safe", ["safe", "harmless"]),
    ],
}

# after a single-letter pairwise label only punctuation or these words may follow
_AFTER_LETTER = re.compile(
    r"^(?:\s*$|\s*[^\w\s]|\s+(?:is|was|wins?|better|significantly|clearly|response)\b)",
    re.IGNORECASE,
)
_LIKERT = re.compile(r"^([1-6])(?:\s*(?:/\s*6|out\s+of\s+6))?(?!\d|[.,]\d|\s*/|\s*out\s+of)")


def _clean(text: str) -> str:
    return _EMPHASIS.sub("", text).strip()


def _label_at_start(protocol: str, text: str) -> str | int | None:
    """The label `text` starts with (None if it starts with none, or with an alternative)."""
    text = text.strip().strip("\"'([{").strip()
    lowered = text.lower()
    if protocol == "likert":
        match = _LIKERT.match(lowered)
        if not match or _ALTERNATIVE.match(lowered[match.end() :]):
            return None
        return int(match.group(1))
    for label, spellings in _VOCABULARY[protocol]:
        for spelling in spellings:
            if not re.match(re.escape(spelling) + r"\b", lowered):
                continue
            rest = lowered[len(spelling) :]
            if len(spelling) == 1 and not _AFTER_LETTER.match(rest):
                continue
            if _ALTERNATIVE.match(rest):
                return None
            return label
    return None


def _whole(protocol: str, text: str) -> str | int | None:
    """The label when the whole reply is just one (trailing punctuation allowed)."""
    stripped = text.strip().rstrip(".!").strip()
    label = _label_at_start(protocol, stripped)
    if label is None:
        return None
    # the label must be all there is: nothing but the spelling itself
    if protocol == "likert":
        return label if re.fullmatch(r"[1-6](?:\s*/\s*6)?", stripped) else None
    spellings = dict(_VOCABULARY[protocol])[label]
    return label if stripped.lower() in spellings else None


def parse(protocol: str, text: str | None) -> str | int | None:
    """The verdict label in a judge's reply, or None when it is missing or ambiguous.

    pairwise -> "A" | "B" | "neither"; absolute -> "fail" | "pass" | "excellent";
    likert -> 1..6; safety -> "safe" | "unsafe".
    """
    if not text or not text.strip():
        return None
    cleaned = _clean(text)
    found: list[str | int] = []
    for match in _BRACKETS.finditer(cleaned):
        label = _label_at_start(protocol, match.group(1))
        if label is None or _whole(protocol, match.group(1)) is None:
            return None  # a bracketed marker that is not a clean label: refuse to guess
        found.append(label)
    for match in _KEYWORD.finditer(cleaned):
        label = _label_at_start(protocol, match.group(1))
        if label is not None:
            found.append(label)
    if not found:
        whole = _whole(protocol, cleaned)
        return whole
    distinct = set(found)
    return found[-1] if len(distinct) == 1 else None


PARSERS: dict[str, Callable[[str | None], str | int | None]] = {
    name: (lambda text, _name=name: parse(_name, text))
    for name in ("pairwise", "absolute", "likert", "safety")
}
