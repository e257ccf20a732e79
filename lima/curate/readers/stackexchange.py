"""Stack Exchange `Posts.xml`: two passes over byte-range shards.

Pass 1 (`scan`) reads every row once and keeps integers: each question's best answer, where
the questions and the answers that can pass the score rule are, and rejects what is already
decided (most answers: below the score floor); well-formed rows are read by `fastscan` without
parsing their text, the others by lxml. Pass 2 (`read_selected`) re-reads only the rows it
needs, by byte offset: it converts and checks the top answers, then reads the questions of the
answers that passed every rule (one row each, wherever it is in the file) and `join`s each
pair into a doc, all in the shard's worker. Memory is bounded by the number of questions,
never by text."""

from __future__ import annotations

import random
import re
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from lima.curate.readers.base import Counter
from lima.curate.readers.best_answers import Best
from lima.curate.readers.fastscan import scan_rows
from lima.curate.readers.rows import RawRow, rows_at
from lima.curate.records import Doc, Rejection, StackAnswer, StackQuestion, doc, reject
from lima.curate.rules import answer_failure, title_self_contained
from lima.curate.stats import Stats
from lima.curate.text import HtmlError, html_to_markdown, strip_links
from lima.spec.data import StackExchangeFilters


def site_of(path: str, override: str | None = None) -> str:
    """`math.stackexchange.com_Posts.xml` or `math.stackexchange.com/Posts.xml` -> `math`."""
    if override:
        return override
    p = PurePosixPath(path.replace("\\", "/"))
    stem = (
        p.parent.name
        if p.name == "Posts.xml"
        else re.sub(r"[_.-]?Posts\.xml$", "", p.name, flags=re.I)
    )
    stem = stem.removesuffix(".xml").lower()
    return stem.split(".")[0] or "unknown"


def group_of(site: str, rules: StackExchangeFilters) -> str:
    return "stem" if site in set(rules.stem_sites) else "other"


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


@dataclass
class Scan:
    """Pass 1 over one byte range: integers and offsets only, plus the rows already decided."""

    best: Best = field(default_factory=dict)
    # Compact (8 bytes an entry): the driver holds these for every question until pass 2.
    question_ids: array = field(default_factory=lambda: array("q"))
    question_offsets: array = field(default_factory=lambda: array("q"))
    candidates: list[tuple[int, int, int, int]] = field(default_factory=list)
    """(answer id, question id, score, byte offset) of answers that may pass the score rule."""
    rejected: list[Rejection] = field(default_factory=list)
    """Malformed rows, rows without Id, answers below the score floor: final in pass 1."""


@dataclass
class Selection:
    """What pass 2 reads for one byte range: the top answers among its candidates, and where the
    question of each of them is (anywhere in the file); nothing else."""

    candidates: list[tuple[int, int, int, int]]
    top_answers: set[int]
    questions: dict[int, int]
    """Question id -> byte offset, for the questions of this range's top answers."""


def scan(
    path: str, start: int, end: int, *, source: str, min_score: int, max_chars: int, stats: Stats
) -> Scan:
    """Pass 1: read every row once; keep each question's best answer, where the questions and
    the answers that can pass the score rule are, and reject what is already decided.

    Rows are read by `fastscan.scan_rows`: the numbers of a well-formed row straight from its
    bytes, any other row through lxml (`rows.py`), with the same results either way."""
    out, counter = Scan(), Counter(source, path, stats)
    best, candidates, rejected = out.best, out.candidates, out.rejected
    add_question, add_offset = out.question_ids.append, out.question_offsets.append
    floor, no_key = min_score, (-(10**9), 0)
    answers = below = 0  # fast rows' counts, added to the stats once (after the first of each)
    for block in scan_rows(path, start, end, max_chars):
        for item in block:
            if item.__class__ is not tuple:
                _scan_raw(out, counter, item, min_score)
                continue
            offset, post_id, kind, parent_id, score_text = item
            if kind == b"1":
                add_question(int(post_id))
                add_offset(offset)
            elif kind == b"2":
                aid, score = int(post_id), int(score_text) if score_text is not None else 0
                parent = int(parent_id) if parent_id is not None else -1
                answers += 1
                key = (score, -aid)
                if parent >= 0 and key > best.get(parent, no_key):
                    best[parent] = key
                if score >= floor:
                    candidates.append((aid, parent, score, offset))
                    continue
                if below:
                    below += 1
                else:  # counted now so the stats name the rules in order of first occurrence
                    stats.count_drop(source, "score_below_min")
                    below = 1
                rejected.append(
                    Rejection(source, path, str(aid), "score_below_min", f"score {score}")
                )
    if answers:
        counter.counted(answers)
    if below > 1:
        stats.count_drop(source, "score_below_min", below - 1)
    return out


def _scan_raw(out: Scan, counter: Counter, raw: RawRow, min_score: int) -> None:
    """A row the lxml path read (or could not read)."""
    attrs = raw.attrs
    if attrs is None:
        rule, _, detail = (raw.error or "malformed").partition(": ")
        counter.counted()
        out.rejected.append(counter.drop(f"byte {raw.offset}", rule, detail, raw.excerpt))
        return
    post_id = _post_id(attrs)
    if post_id is None:  # malformed: never the top answer, never joined
        detail = f"Id {attrs.get('Id')!r}" if "Id" in attrs else "no Id attribute"
        counter.counted()
        out.rejected.append(counter.drop(f"byte {raw.offset}", "missing_id", detail))
        return
    kind = attrs.get("PostTypeId")
    if kind == "1":
        out.question_ids.append(post_id)
        out.question_offsets.append(raw.offset)
    elif kind == "2":
        _scan_answer(out, counter, attrs, post_id, raw.offset, min_score)


def _scan_answer(
    out: Scan, counter: Counter, attrs: Mapping[str, str], aid: int, offset: int, min_score: int
) -> None:
    counter.counted()
    parent, score = _int(attrs.get("ParentId"), -1), _int(attrs.get("Score"))
    key = (score, -aid)
    if parent >= 0 and key > out.best.get(parent, (-(10**9), 0)):
        out.best[parent] = key
    if score < min_score:
        out.rejected.append(counter.drop(aid, "score_below_min", f"score {score}"))
    else:
        out.candidates.append((aid, parent, score, offset))


def _post_id(attrs: Mapping[str, str]) -> int | None:
    """The row's `Id`, or None when it is missing or not a non-negative integer."""
    value = attrs.get("Id")
    return int(value) if value is not None and value.isdigit() else None


def select(part: Scan, answer_ids: set[int], question_at: Mapping[int, int]) -> Selection:
    """The rows of one range that pass 2 needs, given the ids of the file's top answers and the
    offsets of their questions (`question_offsets` of every range of the file)."""
    tops = [c for c in part.candidates if c[0] in answer_ids]
    return Selection(
        candidates=part.candidates,
        top_answers={c[0] for c in tops},
        questions={c[1]: question_at[c[1]] for c in tops if c[1] in question_at},
    )


def question_offsets(part: Scan, top: Mapping[int, int]) -> dict[int, int]:
    """Question id -> byte offset of the questions of one range whose top answer can pass (the
    last row of an id in file order wins when the ranges' maps are merged in file order)."""
    return {
        qid: offset
        for qid, offset in zip(part.question_ids, part.question_offsets, strict=True)
        if qid in top
    }


def read_selected(
    path: str,
    selection: Selection,
    *,
    source: str,
    site: str,
    rules: StackExchangeFilters,
    seed: int,
    max_chars: int,
    stats: Stats,
) -> Iterator[Doc | Rejection]:
    """Pass 2 over one range: its top answers converted and checked against LIMA's rules (the
    other candidates rejected as `not_top_answer`), then the question of each answer that passed,
    read by offset, and the pairs joined into docs. Rejections come in file order, then the
    questions' and the joins' ones; docs in the answers' file order."""
    counter = Counter(source, path, stats)
    wanted = {c[3]: c for c in selection.candidates if c[0] in selection.top_answers}
    for aid, _qid, score, _offset in selection.candidates:
        if aid not in selection.top_answers:
            yield counter.drop(aid, "not_top_answer", f"score {score}")
    answers: list[StackAnswer] = []
    for raw in rows_at(path, sorted(wanted), max_chars):
        if raw.attrs is None:  # the file changed between the passes
            yield _unreadable(counter, raw)
            continue
        aid, qid, score, _ = wanted[raw.offset]
        item = _answer(raw.attrs, aid, qid, score, counter, rules)
        if isinstance(item, Rejection):
            yield item
        else:
            answers.append(item)
    offsets = {selection.questions[a.qid] for a in answers if a.qid in selection.questions}
    questions: dict[int, StackQuestion] = {}
    for item in read_questions(
        path, sorted(offsets), site=site, rules=rules, seed=seed, max_chars=max_chars,
        counter=counter,
    ):  # fmt: skip
        if isinstance(item, Rejection):
            yield item
        else:
            questions[item.qid] = item
    yield from join(answers, questions, source, site, stats, rules)


def _unreadable(counter: Counter, raw: RawRow) -> Rejection:
    rule, _, detail = (raw.error or "malformed").partition(": ")
    return counter.drop(f"byte {raw.offset}", rule, detail, raw.excerpt)


def read_questions(
    path: str,
    offsets: list[int],
    *,
    site: str,
    rules: StackExchangeFilters,
    seed: int,
    max_chars: int,
    counter: Counter,
) -> Iterator[StackQuestion | Rejection]:
    """The question rows at these (sorted) offsets; a row that no longer parses is rejected."""
    for raw in rows_at(path, offsets, max_chars):
        if raw.attrs is None:  # the file changed between the passes
            yield _unreadable(counter, raw)
        else:
            qid = _post_id(raw.attrs) or -1
            yield _question(raw.attrs, qid, site, seed, rules.body_prompt_fraction)


def _question(
    attrs: Mapping[str, str], qid: int, site: str, seed: int, fraction: float
) -> StackQuestion:
    title = (attrs.get("Title") or "").strip()
    # Paper: "we randomly select the title as the prompt for some examples, and the description
    # for others". Seeded per (site, question) so shards and reruns agree.
    use_body = random.Random(f"{seed}:{site}:{qid}").random() < fraction
    return StackQuestion(
        qid=qid,
        title=title,
        use_body=use_body,
        # Converted at the join, only if its answer passed every rule (most never do).
        body_html=(attrs.get("Body") or "") if use_body else "",
        tags=re.findall(r"<([^>]+)>", attrs.get("Tags") or "")
        or [t for t in (attrs.get("Tags") or "").split("|") if t],
        self_contained=title_self_contained(title),
    )


def _answer(
    attrs: Mapping[str, str],
    aid: int,
    qid: int,
    score: int,
    counter: Counter,
    rules: StackExchangeFilters,
) -> StackAnswer | Rejection:
    try:
        markdown = html_to_markdown(attrs.get("Body") or "")
    except HtmlError as error:
        return counter.drop(aid, "malformed_html", str(error), attrs.get("Body") or "")
    failure = answer_failure(markdown, score, rules)
    if failure:
        return counter.drop(aid, failure, f"score {score}, {len(markdown)} chars", markdown)
    return StackAnswer(aid, qid, score, markdown, counter.path)


def join(
    answers: list[StackAnswer],
    questions: dict[int, StackQuestion],
    source: str,
    site: str,
    stats: Stats,
    rules: StackExchangeFilters,
) -> Iterator[Doc | Rejection]:
    """Pair each kept answer with its question; the prompt is the title or the body."""
    for answer in answers:
        question = questions.get(answer.qid)
        where = (answer.file, answer.aid)
        if question is None:
            stats.count_drop(source, "question_missing")
            yield reject(source, *where, "question_missing", f"ParentId {answer.qid}")
            continue
        if rules.require_title_question and not question.self_contained:
            stats.count_drop(source, "title_not_self_contained")
            yield reject(source, *where, "title_not_self_contained", question.title)
            continue
        body = _question_body(question)
        prompt = body or question.title
        if not prompt:
            stats.count_drop(source, "empty_prompt")
            yield reject(source, *where, "empty_prompt")
            continue
        meta: dict[str, Any] = {
            "site": site,
            "score": answer.score,
            "question_id": answer.qid,
            "prompt_from": "body" if body else "title",
        }
        yield doc(
            source,
            answer.file,
            answer.aid,
            [prompt, answer.markdown],
            tags=question.tags,
            meta=meta,
        )


def _question_body(question: StackQuestion) -> str:
    """The question's body as Markdown when it is the prompt; an unreadable body falls back to
    the title (the pairing is still a valid LIMA example)."""
    if not question.use_body:
        return ""
    try:
        return strip_links(html_to_markdown(question.body_html))
    except HtmlError:
        return ""
