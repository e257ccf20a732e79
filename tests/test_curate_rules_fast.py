"""The fast forms of LIMA's answer rules (`lima.curate.rules._Prose`) against the patterns they
stand for: the same verdict on every text (real answers, adversarial and random ones)."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import pytest

from lima.curate import rules
from lima.curate.readers.rows import iter_rows
from lima.curate.text import html_to_markdown, prose

CHECKS = {
    "first_person": lambda body: bool(
        rules._FIRST_PERSON_I.search(body) or rules._FIRST_PERSON_WORDS.search(body)
    ),
    "refers_to_other_answers": lambda body: bool(rules.OTHER_ANSWER.search(body)),
    "has_bare_url": lambda body: bool(rules.URL.search(body)),
}

FRAGMENTS = [
    "as mentioned", "As Stated", "as noted", "AS SAID", "as pointed out", "as others have",
    "other answer", "Another Answers", "previous answer", "accepted answers", "above answer",
    "below answers", "answer above", "Answers Below", "stackexchange", "Stack Exchange",
    "stackoverflow", "stack Overflow", "edit:", "EDIT :", "re-edit:", "credit:", "update:",
    "Update\t:", "outdated:", "upvote", "up-voted", "Downvoting", "down-vote", "devoted",
    "this question", "This Question", "the op", "the OP's", "OP", "op", "top", "hop", "op_x",
    "x_op", "1op", "opé", "éop", "my", "MY", "Me", "me.", "mine", "myself", "Myself", "memo",
    "home", "amy", "I", "I'm", "I've", "i", "It", "AI", "I_", "_I", "Iz", "http://x.org",
    "HTTPS://Y", "ftp://z", "www.example.com", "WWW.", "http:// ", "www. x",
    "\u0130", "\u0131", "\u017f", "\u212a", "\u017ftack exchange", "\u212aey", "th\u0130s question",
    "\u00e9dit:", "\u00c9DIT:", "caf\u00e9", "na\u00efve", "\u00a0", "\u2003", "\u200b",
    "\u0301", "e\u0301dit:", "\u4e2d\u6587", "\U0001f600", "\u03a3\u03c3\u03c2", "\u00df",
    "\u1e9e", "\ufb01", "\u2126", "\u212b", "\u00b5", "\u2160", "\u00bd", "\u0660", "_", "-",
    ":", " ", "\n", "\t", ".", ",", "'", '"', "(", ")", "[", "]", "`", "#", "z", "j", "y",
]  # fmt: skip


def verdicts(body: str) -> dict[str, bool]:
    fast = rules._Prose(body)
    return {name: getattr(fast, name)() for name in CHECKS}


def expected(body: str) -> dict[str, bool]:
    return {name: check(body) for name, check in CHECKS.items()}


def test_fragments_alone_and_in_pairs():
    for a in FRAGMENTS:
        assert verdicts(a) == expected(a), a
        for b in FRAGMENTS:
            for text in (a + b, f"{a} {b}", f"x{a}.{b}y"):
                assert verdicts(text) == expected(text), text


def test_random_texts():
    rng = random.Random(14)
    for _ in range(20_000):
        text = "".join(
            rng.choice(FRAGMENTS) + rng.choice(["", " ", "", "\n"])
            for _ in range(rng.randint(1, 12))
        )
        if rng.random() < 0.5:
            text = "".join(c.upper() if rng.random() < 0.3 else c for c in text)
        assert verdicts(text) == expected(text), repr(text)


def test_only_four_characters_fold_to_ascii_letters():
    """re.I matches these (and no other non-ASCII character) to an ASCII letter."""
    letter = re.compile("[a-z]", re.I)
    found = {chr(c) for c in range(0x80, sys.maxunicode + 1) if letter.fullmatch(chr(c))}
    assert found == set(rules._FOLDS_TO_ASCII)


def test_stand_ins_keep_the_classes():
    for c in range(0x80, 0x3000):
        ch = chr(c)
        stand = rules._stand_in(ch)
        for pattern in (r"\w", r"\s", r"\S"):
            assert bool(re.fullmatch(pattern, ch)) == bool(re.fullmatch(pattern, stand)), hex(c)


def _answers(path: Path) -> list[str]:
    out = []
    for raw in iter_rows(str(path), 0, 10**12, 200_000):
        if raw.attrs is not None and raw.attrs.get("PostTypeId") == "2":
            out.append(html_to_markdown(raw.attrs.get("Body") or ""))
    return out


def test_shared_sample_answers(shared_data: Path):
    answers = _answers(shared_data / "stackexchange" / "beer.stackexchange.com_Posts.xml")
    assert len(answers) > 1000
    for markdown in answers:
        body = prose(markdown)
        assert verdicts(body) == expected(body)
        assert verdicts(body.upper()) == expected(body.upper())


@pytest.mark.parametrize(
    "text",
    [
        "I think so.",
        "As mentioned in the accepted answer, see www.example.com",
        "Boil it. EDIT: it works",
        "Caf\u00e9 owners, as \u017ftated above, know this.",
        "Plain text with `my code` and no rule broken at all, repeated. " * 30,
    ],
)
def test_public_rule_functions(text: str):
    assert rules.first_person(text) == CHECKS["first_person"](prose(text))
    assert rules.refers_to_other_answers(text) == CHECKS["refers_to_other_answers"](prose(text))
    assert rules.has_bare_url(text) == CHECKS["has_bare_url"](prose(text))
