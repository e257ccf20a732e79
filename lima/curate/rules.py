"""LIMA's Stack Exchange answer rules (Section 2.1), each returning the rule name that fails."""

from __future__ import annotations

import re

from lima.curate.text import URL, prose
from lima.spec.data import StackExchangeFilters

# Paper: answers "written in the first person ("I", "my")". The pronoun "I" is matched in capitals
# only, so that a variable `i` is not mistaken for it; the other words in any case.
_FIRST_PERSON_I = re.compile(r"\bI\b|\bI'(?:m|ve|d|ll)\b")
_FIRST_PERSON_WORDS = re.compile(r"\b(?:my|me|mine|myself)\b", re.I)

# Paper: answers that "reference other answers ("as mentioned", "stack exchange", etc)".
OTHER_ANSWER = re.compile(
    r"as (?:mentioned|stated|noted|said|pointed out)|"
    r"(?:other|another|previous|accepted|above|below)"
    r" answers?|answers? (?:above|below)|stack ?exchange|stack ?overflow|\bedit\s*:|\bupdate\s*:|"
    r"\bup-?vot|\bdown-?vot|this question|the op\b|\bOP\b|as others have",
    re.I,
)
QUESTION_WORDS = re.compile(
    r"^(?:what|why|how|when|where|which|who|whom|whose|is|are|was|were|do|does|did|can|could|"
    r"should|would|will|shall|may|might|has|have|had)\b",
    re.I,
)


def first_person(text: str) -> bool:
    body = prose(text)
    return bool(_FIRST_PERSON_I.search(body) or _FIRST_PERSON_WORDS.search(body))


def refers_to_other_answers(text: str) -> bool:
    return bool(OTHER_ANSWER.search(prose(text)))


def has_bare_url(text: str) -> bool:
    return bool(URL.search(prose(text)))


def title_self_contained(title: str) -> bool:
    title = title.strip()
    return title.endswith("?") or bool(QUESTION_WORDS.match(title))


def answer_failure(markdown: str, score: int, rules: StackExchangeFilters) -> str | None:
    """The first rule the top answer breaks, or None when it is kept."""
    if score < rules.min_score:
        return "score_below_min"
    if len(markdown) < rules.min_answer_chars:
        return "answer_too_short"
    if len(markdown) > rules.max_answer_chars:
        return "answer_too_long"
    if rules.drop_first_person and first_person(markdown):
        return "first_person"
    if rules.drop_other_answer_references and refers_to_other_answers(markdown):
        return "refers_to_other_answers"
    if rules.drop_bare_urls and has_bare_url(markdown):
        return "bare_url"
    if "<img" in markdown or "](" in prose(markdown):
        return "link_or_image"
    return None
