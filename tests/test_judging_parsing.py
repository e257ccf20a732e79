"""Strict verdict parsing against messy judge replies."""

from __future__ import annotations

import pytest

from lima.judging.parsing import parse

CASES = [
    # pairwise: labels, markdown, casing, [[X]] style, prose around, both labels mentioned
    ("pairwise", "Verdict: A", "A"),
    ("pairwise", "**Verdict:** b", "B"),
    ("pairwise", "verdict: NEITHER", "neither"),
    ("pairwise", "Response A is longer, but B is right.\n\nVerdict: B", "B"),
    ("pairwise", "A mentions X; B mentions Y.\nVerdict: neither\nThanks for asking!", "neither"),
    ("pairwise", "[[A]]", "A"),
    ("pairwise", "After careful thought: [[B]]. Let me know if you need more.", "B"),
    ("pairwise", "My verdict is [[C]]", "neither"),
    ("pairwise", "## Final Verdict: `A`\nTrailing remarks about response B.", "A"),
    ("pairwise", "Final verdict: Response B is significantly better.", "B"),
    ("pairwise", "Verdict: a tie", "neither"),
    ("pairwise", "A", "A"),
    ("pairwise", "  Neither.  ", "neither"),
    ("pairwise", "**B**", "B"),
    ("pairwise", "[[A]] ... Verdict: A", "A"),
    ("pairwise", "Verdict: [[B]]", "B"),
    ("pairwise", "Verdict: **A**", "A"),
    ("pairwise", "The better answer: A", "A"),
    # ambiguous or missing -> None
    ("pairwise", "Verdict: A\nOn reflection, Verdict: B", None),
    ("pairwise", "[[A]] or maybe [[B]]", None),
    ("pairwise", "Verdict: A or B", None),
    ("pairwise", "Verdict: A/B", None),
    ("pairwise", "Response A is significantly better than response B.", None),
    ("pairwise", "Verdict: Absolutely B", None),
    ("pairwise", "[[Response A, probably]]", None),
    ("pairwise", "", None),
    ("pairwise", "   \n ", None),
    # absolute
    ("absolute", "Rating: Pass", "pass"),
    ("absolute", "rating: EXCELLENT.", "excellent"),
    ("absolute", "It would pass at first glance. Rating: Fail", "fail"),
    ("absolute", "*Rating*: **Excellent**\n\n(it is thorough)", "excellent"),
    ("absolute", "Pass", "pass"),
    ("absolute", "Rating: [[Pass]]", "pass"),
    ("absolute", "It mostly passes.", None),
    ("absolute", "Rating: Good", None),
    ("absolute", "Rating: Pass\nRating: Excellent", None),
    # likert 1-6
    ("likert", "Score: 4", 4),
    ("likert", "Reasoning...\nScore: 4/6", 4),
    ("likert", "Score: 3 out of 6", 3),
    ("likert", "[[5]]", 5),
    ("likert", "6", 6),
    ("likert", "**Score:** 2.", 2),
    ("likert", "Score: 7", None),
    ("likert", "Score: 0", None),
    ("likert", "Score: 4.5", None),
    ("likert", "Score: 5/10", None),
    ("likert", "Score: 4 or 5", None),
    ("likert", "I would give it a 5.", None),
    # safety: "unsafe" must not read as "safe"
    ("safety", "Verdict: unsafe", "unsafe"),
    ("safety", "Verdict: Safe", "safe"),
    ("safety", "verdict: not safe", "unsafe"),
    ("safety", "The reply is safe-ish.\nVerdict: UNSAFE", "unsafe"),
    ("safety", "Safe", "safe"),
    ("safety", "Verdict: safe or unsafe", None),
]


@pytest.mark.parametrize(("protocol", "text", "expected"), CASES)
def test_parse(protocol: str, text: str, expected: str | int | None) -> None:
    assert parse(protocol, text) == expected


ISSUE_CASES = [
    # a second marker on the same line is a second marker: ambiguous, never the first label
    ("pairwise", "Answer: A. Verdict: B", None),
    ("pairwise", "Answer: A. Verdict: A", "A"),
    ("pairwise", "[[A]] Verdict: B", None),
    ("absolute", "Rating: Pass; final rating: Fail", None),
    # "none of the above" is prose, not the label "none" (= neither)
    ("pairwise", "Label: none of the above fits.\nVerdict: A", "A"),
    ("pairwise", "Label: none of the above ... Verdict: A", "A"),  # the issue's line, verbatim
    ("pairwise", "Label: none of the above. Verdict: B", "B"),
    ("pairwise", "Label: none", "neither"),
    # a dash joins prose: only a bare label after it counts
    ("pairwise", "Answer - B is shorter, but A is right about the dates.", None),
    ("pairwise", "Answer - B is shorter.\nVerdict: A", "A"),
    ("pairwise", "Verdict - B", "B"),
    ("likert", "Score - 4", 4),
    # LIMA's own answer formats (Appendix C options, Appendix D bare score repeated)
    ("pairwise", "Both are fine.\nAnswer B is significantly better.", "B"),
    ("pairwise", "◼ Neither is significantly better.", "neither"),
    ("pairwise", "Answer A is significantly better.\nAnswer B is significantly better.", None),
    ("likert", "The answer is clear but repeats itself.\n4\n4", 4),
    ("likert", "It is well organised.\n5\n6", None),
    # MT-Bench single grading, 1-10
    ("single", "Short and correct.\nRating: [[8]]", 8),
    ("single", "Rating: [[10]]", 10),
    ("single", "Rating: [[11]]", None),
    ("single", "Rating: [[7.5]]", None),
    ("single", "Rating: 8/10", 8),
]


@pytest.mark.parametrize(("protocol", "text", "expected"), ISSUE_CASES)
def test_parse_issue_cases(protocol: str, text: str, expected: str | int | None) -> None:
    assert parse(protocol, text) == expected
