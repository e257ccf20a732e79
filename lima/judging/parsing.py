"""Strict verdict parsing.

A verdict is read only from explicit markers, never guessed from prose:
1. bracketed labels, `[[A]]`, `[[neither]]`, `[[5]]` (MT-Bench style);
2. keyword markers, `Verdict: B`, `**Final rating:** Pass`, `Score = 4/6`; a line may hold several
   (`Answer: A. Verdict: B` is two markers); after a `-` separator the label must be all that
   follows (`Verdict - A`), so `Answer - B is shorter but A is right` is prose, not a verdict;
3. a line that is nothing but a label (`A`, `Neither.`, `Excellent`, the bare `5` the LIMA
   Likert prompt asks for), or one of the LIMA pairwise options as a whole line
   (`Answer A is significantly better.`, `Neither is significantly better.`).
Markdown emphasis, headings, backticks and casing are ignored. A label followed by words that
make it prose (`none of the above`, `safe or unsafe`) is not a label. When the markers name more
than one distinct label the reply is ambiguous; when there is none it is unparseable. Either way
`parse` returns None (never a guess) and the judge asks once more (see `llm.py`), then records
the verdict as invalid.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_EMPHASIS = re.compile(r"[*_`#>]+")
_BRACKETS = re.compile(r"\[\[\s*([^\[\]\n]{1,40}?)\s*\]\]")
_KEYWORD = re.compile(
    r"(?<![\w-])(?:final\s+|overall\s+)?"
    r"(?:verdict|rating|score|grade|decision|judg(?:e)?ment|answer|label|assessment)"
    r"[ \t]*(?:is)?[ \t]*([:=\-])",
    re.IGNORECASE,
)
# a label must not be followed by an alternative ("A or B", "A/B")
_ALTERNATIVE = re.compile(r"^\s*(?:or|/|and|vs\.?|versus|nor)\b|^\s*/", re.IGNORECASE)
# ...nor by words that turn it into prose ("none of the above", "tie to the question")
_PROSE_AFTER = re.compile(r"^\s+(?:of|than|to|in|with|for|from)\b", re.IGNORECASE)
# after a single-letter pairwise label only punctuation or these words may follow
_AFTER_LETTER = re.compile(
    r"^(?:\s*$|\s*[^\w\s]|\s+(?:is|was|wins?|better|significantly|clearly|response)\b)",
    re.IGNORECASE,
)
# the options of LIMA's pairwise question (Appendix C), each as a whole line
_OPTION = re.compile(
    r"^[^\w]*(?:(?:answer|response|assistant|output)\s+([ab])|(neither)(?:\s+answer)?)"
    r"\s+is\s+significantly\s+better[.!]?$",
    re.IGNORECASE,
)

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
SCALES = {"likert": 6, "single": 10}
"""Numeric protocols: the top of the 1..N scale."""


def _clean(text: str) -> str:
    return _EMPHASIS.sub("", text).strip()


def _number_at_start(protocol: str, lowered: str) -> int | None:
    top = SCALES[protocol]
    match = re.match(
        rf"^(\d{{1,2}})(?:\s*(?:/\s*{top}|out\s+of\s+{top}))?(?!\d|[.,]\d|\s*/|\s*out\s+of)",
        lowered,
    )
    if not match or _ALTERNATIVE.match(lowered[match.end() :]):
        return None
    value = int(match.group(1))
    return value if 1 <= value <= top else None


def _label_at_start(protocol: str, text: str) -> str | int | None:
    """The label `text` starts with (None if it starts with none, or with an alternative)."""
    text = text.strip().strip("\"'([{").strip()
    lowered = text.lower()
    if protocol in SCALES:
        return _number_at_start(protocol, lowered)
    for label, spellings in _VOCABULARY[protocol]:
        for spelling in spellings:
            if not re.match(re.escape(spelling) + r"\b", lowered):
                continue
            rest = lowered[len(spelling) :]
            if len(spelling) == 1 and not _AFTER_LETTER.match(rest):
                continue
            if _ALTERNATIVE.match(rest) or _PROSE_AFTER.match(rest):
                return None
            return label
    return None


def _whole(protocol: str, text: str) -> str | int | None:
    """The label when `text` is just one (trailing punctuation allowed)."""
    stripped = text.strip().rstrip(".!").strip().strip("\"'")
    label = _label_at_start(protocol, stripped)
    if label is None:
        return None
    # the label must be all there is: nothing but the spelling itself
    if protocol in SCALES:
        top = SCALES[protocol]
        return label if re.fullmatch(rf"\d{{1,2}}(?:\s*/\s*{top})?", stripped) else None
    spellings = dict(_VOCABULARY[protocol])[label]
    return label if stripped.lower() in spellings else None


def _keyword_markers(protocol: str, cleaned: str) -> list[str | int]:
    """Labels after keyword markers; each marker's text ends at the next marker or line end."""
    found: list[str | int] = []
    matches = list(_KEYWORD.finditer(cleaned))
    for index, match in enumerate(matches):
        line_end = cleaned.find("\n", match.end())
        end = len(cleaned) if line_end < 0 else line_end
        if index + 1 < len(matches):
            end = min(end, matches[index + 1].start())
        segment = cleaned[match.end() : end]
        if match.group(1) == "-":  # a dash joins prose too: only a bare label counts
            label = _whole(protocol, segment)
        else:
            label = _label_at_start(protocol, segment)
        if label is not None:
            found.append(label)
    return found


def _line_markers(protocol: str, cleaned: str) -> list[str | int]:
    """Lines that are only a label, and (pairwise) LIMA's options written out."""
    found: list[str | int] = []
    for line in cleaned.splitlines():
        line = line.strip()
        if not line:
            continue
        label = _whole(protocol, line)
        if label is None and protocol == "pairwise":
            option = _OPTION.match(line)
            if option:
                label = "neither" if option.group(2) else option.group(1).upper()
        if label is not None:
            found.append(label)
    return found


def parse(protocol: str, text: str | None) -> str | int | None:
    """The verdict label in a judge's reply, or None when it is missing or ambiguous.

    pairwise -> "A" | "B" | "neither"; absolute -> "fail" | "pass" | "excellent";
    likert -> 1..6; single -> 1..10; safety -> "safe" | "unsafe".
    """
    if not text or not text.strip():
        return None
    cleaned = _clean(text)
    found: list[str | int] = []
    for match in _BRACKETS.finditer(cleaned):
        label = _whole(protocol, match.group(1))
        if label is None:
            return None  # a bracketed marker that is not a clean label: refuse to guess
        found.append(label)
    found += _keyword_markers(protocol, cleaned)
    found += _line_markers(protocol, cleaned)
    distinct = set(found)
    return found[-1] if len(distinct) == 1 else None


PARSERS: dict[str, Callable[[str | None], str | int | None]] = {
    name: (lambda text, _name=name: parse(_name, text))
    for name in ("pairwise", "absolute", "likert", "safety", "single")
}
