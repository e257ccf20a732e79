"""Readers of every source layout, on the nasty fixtures (no Ray needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lima.curate.readers.authored import AuthoredReader
from lima.curate.readers.best_answers import merge_best, top_answers
from lima.curate.readers.natural_instructions import NaturalInstructionsReader
from lima.curate.readers.rows import iter_rows, plan_ranges
from lima.curate.readers.stackexchange import (
    question_offsets,
    read_selected,
    scan,
    select,
    site_of,
)
from lima.curate.readers.wikihow import WikiHowReader
from lima.curate.readers.writingprompts import WritingPromptsReader
from lima.curate.records import Doc, Rejection, StackAnswer
from lima.curate.rules import first_person, has_bare_url, refers_to_other_answers
from lima.curate.stats import Stats
from lima.curate.text import detokenize, html_to_markdown
from lima.spec.data import (
    NaturalInstructionsFilters,
    StackExchangeFilters,
    WikiHowFilters,
    WritingPromptsFilters,
)
from tests.conftest import FIXTURES

F = FIXTURES / "curate"
MATH = str(F / "stackexchange" / "math.stackexchange.com_Posts.xml")


def read_wikihow(path: str, source: str, rules, max_chars: int, stats: Stats):
    return WikiHowReader(source, path, stats, max_chars, rules).read()


def read_writingprompts(path: str, source: str, rules, max_chars: int, stats: Stats):
    return WritingPromptsReader(source, path, stats, max_chars, rules).read()


def read_tasks(path: str, source: str, rules, max_chars: int, seed: int, stats: Stats):
    return NaturalInstructionsReader(source, path, stats, max_chars, rules, seed).read()


def read_authored(path: str, source: str, max_chars: int, stats: Stats):
    return AuthoredReader(source, path, stats, max_chars).read()


def split(items):
    items = list(items)
    return [i for i in items if not isinstance(i, Rejection)], [
        i for i in items if isinstance(i, Rejection)
    ]


def se_docs(path: str, rules: StackExchangeFilters, stats: Stats, shard_bytes: int = 10**9):
    """The two passes, as the pipeline runs them (without Ray): pass 2 joins in each range."""
    ranges = plan_ranges(path, shard_bytes)
    parts = [
        scan(path, s, e, source="s", min_score=rules.min_score, max_chars=50_000, stats=stats)
        for s, e in ranges
    ]
    best: dict = {}
    for part in parts:
        merge_best(best, part.best)
    top = top_answers(best, rules.min_score)
    question_at: dict = {}
    for part in parts:
        question_at.update(question_offsets(part, top))
    items = [i for part in parts for i in part.rejected]
    for part in parts:
        items += read_selected(
            path,
            select(part, set(top.values()), question_at),
            source="s",
            site="math",
            rules=rules,
            seed=0,
            max_chars=50_000,
            stats=stats,
        )
    docs, rejected = split(items)
    return [d for d in docs if isinstance(d, Doc)], rejected


def test_bad_xml_rows_are_isolated_and_named():
    rows = list(iter_rows(MATH, 0, 10**9, 50_000))
    errors = sorted((r.error or "").split(":")[0] for r in rows if r.error)
    assert errors == ["field_too_large", "invalid_utf8", "malformed_xml"]
    multi_line = [r for r in rows if r.attrs and r.attrs["Id"] == "9002"]
    assert multi_line and multi_line[0].attrs["Body"] == "two lines"


@pytest.mark.parametrize("shard_bytes", [997, 4096, 30_000])
def test_byte_range_shards_see_every_row_once(shard_bytes):
    whole = [(r.offset, r.error) for r in iter_rows(MATH, 0, 10**9, 50_000)]
    parts = [
        (r.offset, r.error)
        for start, end in plan_ranges(MATH, shard_bytes)
        for r in iter_rows(MATH, start, end, 50_000)
    ]
    assert parts == whole


def test_kept_answers_obey_lima_rules():
    rules = StackExchangeFilters()
    stats = Stats()
    docs, rejected = se_docs(MATH, rules, stats)
    assert len(docs) == 12
    for item in docs:
        answer = item.conversations[1]
        assert item.meta["score"] >= rules.min_score
        assert rules.min_answer_chars <= len(answer) <= rules.max_answer_chars
        assert not first_person(answer)
        assert not refers_to_other_answers(answer)
        assert not has_bare_url(answer)
        assert "](" not in answer and "<img" not in answer and "<a " not in answer
    rules_seen = {r.rule for r in rejected}
    assert {
        "first_person",
        "refers_to_other_answers",
        "bare_url",
        "answer_too_short",
        "answer_too_long",
        "score_below_min",
        "not_top_answer",
        "title_not_self_contained",
        "question_missing",
        "malformed_xml",
        "invalid_utf8",
        "field_too_large",
    } <= rules_seen
    assert all(r.file == MATH and r.row for r in rejected)
    assert stats.dropped["s"]["first_person"] == 1


def test_pass_2_joins_questions_wherever_they_are_in_the_file(tmp_path: Path):
    """Each range's pass 2 reads the questions of its passing answers by offset, so a question
    in another range, or after its answers, is joined all the same; the docs, rejections and
    counts do not depend on how the file is cut."""
    lines = Path(MATH).read_text(encoding="utf-8", errors="surrogateescape").splitlines(True)
    first_question = next(i for i, line in enumerate(lines) if 'Id="1" PostTypeId="1"' in line)
    moved = lines[:first_question] + lines[first_question + 1 : -1]
    moved += [lines[first_question], lines[-1]]  # question 1 after all its answers
    path = tmp_path / "math.stackexchange.com_Posts.xml"
    path.write_text("".join(moved), encoding="utf-8", errors="surrogateescape")

    def run(file: str, shard_bytes: int):
        stats = Stats()
        docs, rejected = se_docs(file, StackExchangeFilters(), stats, shard_bytes)
        return (
            sorted((d.row, d.conversations, d.tags, d.meta) for d in docs),
            # rows that do not parse are named by byte offset, which moving a row changes
            sorted((r.row.split()[0], r.rule, r.detail) for r in rejected),
            stats.to_dict(),
        )

    whole = run(MATH, 10**9)
    assert any(row == "2" for row, *_ in whole[0])  # question 1's top answer is kept
    for shard_bytes in (997, 4096, 10**9):
        docs, rejected, stats = run(str(path), shard_bytes)
        assert docs == whole[0]
        assert rejected == whole[1]
        assert stats["read"] == whole[2]["read"] and stats["dropped"] == whole[2]["dropped"]


def test_code_blocks_and_lists_survive_links_keep_text():
    docs, _ = se_docs(MATH, StackExchangeFilters(), Stats())
    with_code = [d for d in docs if "```" in d.conversations[1]]
    assert len(with_code) == 4
    answer = with_code[0].conversations[1]
    assert "def radius(coefficients):\n    return 1 / max(" in answer
    assert "- first check absolute convergence" in answer
    assert "the ratio test" in answer and "example.org" not in answer and "plot" not in answer


def test_prompt_is_title_or_body_seeded():
    docs, _ = se_docs(MATH, StackExchangeFilters(), Stats())
    sources = {d.meta["prompt_from"] for d in docs}
    assert sources == {"title", "body"}
    again, _ = se_docs(MATH, StackExchangeFilters(), Stats())
    assert [d.conversations[0] for d in docs] == [d.conversations[0] for d in again]


def test_site_names():
    assert site_of("x/math.stackexchange.com_Posts.xml") == "math"
    assert site_of("dump/physics.stackexchange.com/Posts.xml") == "physics"
    assert site_of("stackoverflow.com_Posts.xml") == "stackoverflow"
    assert site_of("anything.xml", "chemistry") == "chemistry"


def test_html_to_markdown():
    md = html_to_markdown(
        '<p>Use <a href="http://x">text</a><img src="a.png"/></p><ol><li>a</li></ol>'
        "<pre><code>x = 1\n</code></pre>"
    )
    assert "Use text" in md and "1. a" in md and "```\nx = 1\n```" in md and "a.png" not in md


def test_wikihow_all_layout():
    stats = Stats()
    docs, rejected = split(
        read_wikihow(str(F / "wikihow/wikihowAll.csv"), "w", WikiHowFilters(), 50_000, stats)
    )
    assert len(docs) == 6
    prompt, body = docs[0].conversations
    assert prompt == "How to Do Task Number 00?"
    assert body.startswith("The following answer shows the method.")
    assert "the guide" in body and "example.org" not in body
    assert "Tips" not in body and "Do not skip" not in body
    assert {r.rule for r in rejected} == {
        "response_too_short",
        "wrong_column_count",
        "field_too_large",
        "invalid_utf8",
    }
    assert stats.read["w"] == 10


def test_wikihow_sep_layout_groups_sections():
    docs, _ = split(
        read_wikihow(
            str(F / "wikihow/wikihowSep.csv"),
            "w",
            WikiHowFilters(min_response_chars=200),
            50_000,
            Stats(),
        )
    )
    assert [d.conversations[0] for d in docs] == [f"How to Keep Starter {i}?" for i in range(3)]
    body = docs[0].conversations[1]
    assert body.startswith("Sourdough starter number 0 needs patience.\nIt takes about a week.")
    assert "## Feeding" in body and "## Using" in body and "## Tips" not in body
    assert "1. Feed it 0." in body


def test_writingprompts_fairseq_pairs():
    docs, rejected = split(
        read_writingprompts(
            str(F / "writingprompts/nasty.wp_source"), "p", WritingPromptsFilters(), 50_000, Stats()
        )
    )
    assert len(docs) == 5
    prompt, story = docs[0].conversations
    assert prompt == "A robot number 0 learns to lie."
    assert docs[0].tags == ["wp"]
    assert story.startswith('"Hello," said robot 0. It didn\'t know why.')
    assert "<newline>" not in story and "\n\n" in story
    assert [r.rule for r in rejected] == [
        "tag_dropped",
        "story_too_short",
        "invalid_utf8",
        "unpaired_line",
    ]


def test_writingprompts_csv_and_detokenizer():
    docs, _ = split(
        read_writingprompts(
            str(F / "writingprompts/stories.csv"), "p", WritingPromptsFilters(), 50_000, Stats()
        )
    )
    assert len(docs) == 3 and docs[0].conversations[0] == "Dragons number 0 open a bakery."
    assert detokenize("Do n't stop , ( please ) ! <newline> Ok .") == "Don't stop, (please)!\nOk."


def test_natural_instructions_schemas():
    rules, stats = NaturalInstructionsFilters(), Stats()
    results = {}
    for path in sorted((F / "natural_instructions").glob("*.json")):
        docs, rejected = split(read_tasks(str(path), "n", rules, 50_000, 0, stats))
        results[path.stem] = (len(docs), [r.rule for r in rejected])
    assert results == {
        "task900_v2": (1, []),
        "task901_old": (1, []),
        "task902_classification": (0, ["not_generation_task"]),
        "task903_xhosa": (0, ["not_english"]),
        "task904_broken": (0, ["json_error"]),
    }
    docs, _ = split(
        read_tasks(str(F / "natural_instructions/task901_old.json"), "n", rules, 50_000, 0, Stats())
    )
    assert docs[0].conversations == [
        "Write a title for the paragraph.\n\nA paragraph about bees.",
        "Bees at Work",
    ]


def test_authored_plain_lima_multiturn_and_bad_lines():
    docs, rejected = split(read_authored(str(F / "authored/mixed.jsonl"), "a", 50_000, Stats()))
    assert [len(d.conversations) for d in docs] == [2, 4, 2]
    assert docs[2].tags == ["safety"]
    assert [r.rule for r in rejected] == [
        "json_error",
        "wrong_schema",
        "wrong_schema",
        "wrong_schema",
        "invalid_utf8",
    ]
    assert [r.row for r in rejected] == ["4", "5", "6", "7", "8"]


def test_shared_stackexchange_sample_obeys_rules(shared_data: Path):
    path = str(shared_data / "stackexchange/beer.stackexchange.com_Posts.xml")
    rules = StackExchangeFilters()
    docs, rejected = se_docs(path, rules, Stats(), shard_bytes=300_000)
    assert docs and len(rejected) > 1000
    for item in docs:
        answer = item.conversations[1]
        assert item.meta["score"] >= 10 and 1200 <= len(answer) <= 4096
        assert not first_person(answer) and not has_bare_url(answer)


def test_shared_writingprompts_and_tasks(shared_data: Path):
    docs, _ = split(
        read_writingprompts(
            str(shared_data / "writingprompts/writingprompts_train_subset.wp_source"),
            "p",
            WritingPromptsFilters(),
            200_000,
            Stats(),
        )
    )
    assert len(docs) > 200 and not any("<newline>" in d.conversations[1] for d in docs)
    tasks = sorted((shared_data / "super_natural_instructions").glob("*.json"))
    kept = [
        d
        for t in tasks
        for d in split(read_tasks(str(t), "n", NaturalInstructionsFilters(), 200_000, 0, Stats()))[
            0
        ]
    ]
    assert 10 <= len(kept) < len(tasks)


POSTS_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n'
LONG_ANSWER = "&lt;p&gt;" + "Water boils at a lower temperature at altitude. " * 30 + "&lt;/p&gt;"


def _posts(tmp_path: Path, *rows: str) -> str:
    path = tmp_path / "beer.stackexchange.com_Posts.xml"
    path.write_text(POSTS_HEAD + "".join(f"  {r}\n" for r in rows) + "</posts>\n")
    return str(path)


def test_truncated_row_never_swallows_the_next_valid_row(tmp_path: Path):
    path = _posts(
        tmp_path,
        '<row Id="1" PostTypeId="1" Score="5" Title="Why does water boil faster?" Body="q" />',
        '<row Id="2" PostTypeId="2" ParentId="1" Score="40" Body="&lt;p&gt;cut off here',
        f'<row Id="3" PostTypeId="2" ParentId="1" Score="34" Body="{LONG_ANSWER}" />',
    )
    rows = list(iter_rows(path, 0, 10**9, 50_000))
    assert [r.error.split(":")[0] if r.error else r.attrs["Id"] for r in rows] == [
        "1",
        "unterminated_row",
        "3",
    ]
    assert "cut off here" in rows[1].excerpt
    docs, rejected = se_docs(path, StackExchangeFilters(), Stats())
    assert [d.row for d in docs] == ["3"] and docs[0].meta["score"] == 34
    assert [r.rule for r in rejected] == ["unterminated_row"]
    # The cut row and the valid one on the SAME line (and on the continuation line of a row
    # cut across lines): the valid row still starts at its own `<row`.
    cut = '<row Id="2" PostTypeId="2" ParentId="1" Score="40" Body="&lt;p&gt;cut off here'
    valid = f'<row Id="3" PostTypeId="2" ParentId="1" Score="34" Body="{LONG_ANSWER}" />'
    question = (
        '<row Id="1" PostTypeId="1" Score="5" Title="Why does water boil faster?" Body="q" />'
    )
    for lines in ([question, cut + valid], [question, cut, "and more " + valid]):
        path = _posts(tmp_path, *lines)
        rows = list(iter_rows(path, 0, 10**9, 50_000))
        assert [r.error.split(":")[0] if r.error else r.attrs["Id"] for r in rows] == [
            "1",
            "unterminated_row",
            "3",
        ]
        assert "cut off here" in rows[1].excerpt and 'Id="3"' not in rows[1].excerpt
        docs, rejected = se_docs(path, StackExchangeFilters(), Stats())
        assert [d.row for d in docs] == ["3"] and docs[0].meta["score"] == 34
        assert [r.rule for r in rejected] == ["unterminated_row"]


def test_rows_without_id_are_malformed_and_never_the_top_answer(tmp_path: Path):
    path = _posts(
        tmp_path,
        '<row Id="1" PostTypeId="1" Score="5" Title="Why does water boil faster?" Body="q" />',
        f'<row PostTypeId="2" ParentId="1" Score="99" Body="{LONG_ANSWER}" />',
        f'<row Id="x7" PostTypeId="2" ParentId="1" Score="98" Body="{LONG_ANSWER}" />',
        f'<row Id="3" PostTypeId="2" ParentId="1" Score="34" Body="{LONG_ANSWER}" />',
    )
    part = scan(path, 0, 10**9, source="s", min_score=10, max_chars=50_000, stats=Stats())
    assert part.best == {1: (34, -3)}
    stats = Stats()
    docs, rejected = se_docs(path, StackExchangeFilters(), stats)
    assert [d.row for d in docs] == ["3"]
    assert sorted((r.rule, r.detail) for r in rejected) == [
        ("missing_id", "Id 'x7'"),
        ("missing_id", "no Id attribute"),
    ]
    assert stats.dropped["s"]["missing_id"] == 2


def _task(tmp_path: Path, name: str, categories: list[str], outputs: list[str]) -> str:
    path = tmp_path / f"{name}.json"
    task = {
        "Definition": ["Do the thing."],
        "Categories": categories,
        "Input_language": ["English"],
        "Output_language": ["English"],
        "Instances": [
            {"id": f"{name}-{i}", "input": f"input {i}", "output": [o]}
            for i, o in enumerate(outputs)
        ],
    }
    path.write_text(json.dumps(task))
    return str(path)


def test_natural_instructions_allow_list_and_minimum_output(tmp_path: Path):
    summary = "A short summary of the paragraph above, in one sentence."
    cases = {
        "qa": _task(tmp_path, "qa", ["Question Answering"], [summary] * 3),
        "extraction": _task(tmp_path, "extraction", ["Information Extraction"], [summary] * 3),
        "lookup": _task(tmp_path, "lookup", ["Summarization"], ["854", "TM", summary]),
        "summary": _task(tmp_path, "summary", ["Summarization"], [summary, "TM", summary]),
    }
    rules = NaturalInstructionsFilters()
    results = {}
    for name, path in cases.items():
        docs, rejected = split(read_tasks(path, "n", rules, 50_000, 0, Stats()))
        results[name] = [d.conversations[1] for d in docs] or [r.rule for r in rejected]
    assert results == {
        "qa": ["not_generation_task"],
        "extraction": ["not_generation_task"],
        "lookup": ["outputs_too_short"],
        "summary": [summary],  # the short instance is never the sampled one
    }
    custom = NaturalInstructionsFilters(generation_categories=["question answering"])
    docs, _ = split(read_tasks(cases["qa"], "n", custom, 50_000, 0, Stats()))
    assert len(docs) == 1


def test_typed_items_pickle_and_rejection_lines():
    """Items cross Ray as pickles (as tuples of fields); a rejection's line keeps the
    rejected.jsonl layout: the common fields, then the rule's own, in that order."""
    import copy
    import pickle

    from lima.curate.records import doc, reject, rejection_lines

    item = doc("s", "f.jsonl", 3, ["q", "a"], tags=["t"], meta={"site": "x"})
    item.minhash, item.tokens = [1, 2], 7
    back = pickle.loads(pickle.dumps(item, protocol=5))
    assert type(back) is Doc and (back.row, back.minhash, back.tokens) == ("3", [1, 2], 7)
    assert copy.deepcopy(back).meta == {"site": "x"}
    answer = StackAnswer(5, 4, 12, "md", "f.xml")
    rejection = reject("s", "f", 9, "near_duplicate", "d" * 400, "é" * 300, similarity={"v": 1})
    assert rejection.line() == (
        '{"source": "s", "file": "f", "row": "9", "rule": "near_duplicate", '
        f'"detail": "{"d" * 300}", "excerpt": "{"é" * 200}", "similarity": {{"v": 1}}}}\n'
    )
    assert rejection_lines([item, rejection, answer]) == (rejection.line().encode(), 1)
