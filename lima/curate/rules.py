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
# Fast forms of the searches above, run on lower-cased ASCII text (what re.I means there; see
# `_Prose` for other text). The regex engine finds no literal to skip to in a pattern that starts
# with `\b` or a case-insensitive alternation and tries it at every character (OTHER_ANSWER took
# ~40 us per ASCII answer, ~400 us per other answer); here a `\b` before a letter is a
# look-behind after it, and OTHER_ANSWER's literal branches are substring tests. Each form
# matches exactly where its pattern does (tests/test_curate_rules_fast.py compares them).
_I_ALONE = re.compile(r"I(?<!\wI)\b")
"""`_FIRST_PERSON_I`: its `\bI'm\b` branch only matches where `\bI\b` does."""
_FIRST_PERSON_WORDS_LOWER = re.compile(r"m(?<!\wm)(?:y|e|ine|yself)\b")
# OTHER_ANSWER's literal branches, by a word every one of the group contains (one substring
# test of the whole text per group in the common case).
_OTHER_ANSWER_LITERALS = {
    "answer": (
        *(f"{w} answer" for w in ("other", "previous", "accepted", "above", "below")),
        *(f"{a} {b}" for a in ("answer", "answers") for b in ("above", "below")),
    ),  # "another answer" contains "other answer"
    "stack": ("stackexchange", "stack exchange", "stackoverflow", "stack overflow"),
    "question": ("this question",),
    "as ": tuple(
        f"as {w}" for w in ("mentioned", "stated", "noted", "said", "pointed out", "others have")
    ),
}
_OP_LOWER = re.compile(r"op(?<!\wop)\b")  # `\bop\b`; `the op\b` only matches where it does
_OTHER_ANSWER_WORDS_LOWER = re.compile(
    r"e(?<!\we)dit\s*:|u(?<!\wu)pdate\s*:|u(?<!\wu)p-?vot|d(?<!\wd)own-?vot"
)
_URL_LOWER = re.compile(r"(?:https?://|ftp://|www\.)\S+")
QUESTION_WORDS = re.compile(
    r"^(?:what|why|how|when|where|which|who|whom|whose|is|are|was|were|do|does|did|can|could|"
    r"should|would|will|shall|may|might|has|have|had)\b",
    re.I,
)


def first_person(text: str) -> bool:
    return _Prose(prose(text)).first_person()


def refers_to_other_answers(text: str) -> bool:
    return _Prose(prose(text)).refers_to_other_answers()


def has_bare_url(text: str) -> bool:
    return _Prose(prose(text)).has_bare_url()


# The only characters outside ASCII that re.I matches to an ASCII letter (İ ı ſ K); a text with
# one of them is searched with the re.I patterns (checked by tests/test_curate_rules_fast.py).
_FOLDS_TO_ASCII = frozenset("\u0130\u0131\u017f\u212a")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


class _Prose:
    r"""An answer's prose (`prose()`), searched by the rules below. `lower` is the text the fast
    patterns search: the lower-cased text where it is ASCII; otherwise each other character
    replaced by one of the same class for `\w`, `\s` and `\S` that no pattern spells (`z` for
    a word character, a space for whitespace, `#` for the rest); None when the text holds one
    of `_FOLDS_TO_ASCII` (the re.I patterns decide)."""

    __slots__ = ("body", "lower")

    def __init__(self, body: str) -> None:
        self.body = body
        self.lower: str | None
        if body.isascii():
            self.lower = body.lower()
            return
        others = set(_NON_ASCII.findall(body))
        if others & _FOLDS_TO_ASCII:
            self.lower = None
            return
        for ch in others:  # a few distinct characters: one C scan each (translate is 40x slower)
            body = body.replace(ch, _stand_in(ch))
        self.lower = body.lower()

    def first_person(self) -> bool:
        if _I_ALONE.search(self.body):
            return True
        if self.lower is None:
            return bool(_FIRST_PERSON_WORDS.search(self.body))
        return bool(_FIRST_PERSON_WORDS_LOWER.search(self.lower))

    def refers_to_other_answers(self) -> bool:
        low = self.lower
        if low is None:
            return bool(OTHER_ANSWER.search(self.body))
        for word, literals in _OTHER_ANSWER_LITERALS.items():
            if word in low and any(literal in low for literal in literals):
                return True
        if _OP_LOWER.search(low):
            return True
        return ("edit" in low or "update" in low or "vot" in low) and bool(
            _OTHER_ANSWER_WORDS_LOWER.search(low)
        )

    def has_bare_url(self) -> bool:
        low = self.lower
        if low is None:
            return bool(URL.search(self.body))
        return ("://" in low or "www." in low) and bool(_URL_LOWER.search(low))


def _stand_in(ch: str) -> str:
    if ch.isalnum():  # what `\w` matches besides `_`
        return "z"
    return " " if ch.isspace() else "#"


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
    body = _Prose(prose(markdown))  # the text outside code, once for every rule below
    if rules.drop_first_person and body.first_person():
        return "first_person"
    if rules.drop_other_answer_references and body.refers_to_other_answers():
        return "refers_to_other_answers"
    if rules.drop_bare_urls and body.has_bare_url():
        return "bare_url"
    if "<img" in markdown or "](" in body.body:
        return "link_or_image"
    return None
