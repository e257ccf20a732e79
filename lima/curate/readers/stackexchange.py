"""Stack Exchange `Posts.xml`: two passes over byte-range shards.

Pass 1 (`scan_top_answers`) keeps only integers: the best answer per question. Pass 2
(`read_shard`) converts and filters just the top answers, and emits the questions they need;
`join` pairs them on the driver. Memory is bounded by the number of questions, never by text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from lima.curate.readers.rows import iter_rows
from lima.curate.records import Item, doc, reject
from lima.curate.rules import answer_failure, title_self_contained
from lima.curate.stats import Stats
from lima.curate.text import html_to_markdown, strip_links
from lima.spec.data import StackExchangeFilters

Best = dict[int, tuple[int, int]]  # question id -> (score, -answer id): max() picks the top answer


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


def scan_top_answers(path: str, start: int, end: int, max_chars: int) -> Best:
    """Pass 1: for every question in this range's answers, its best (score, -id)."""
    best: Best = {}
    for raw in iter_rows(path, start, end, max_chars):
        attrs = raw.attrs
        if attrs is None or attrs.get("PostTypeId") != "2":
            continue
        parent = _int(attrs.get("ParentId"), -1)
        key = (_int(attrs.get("Score")), -_int(attrs.get("Id")))
        if parent >= 0 and key > best.get(parent, (-(10**9), 0)):
            best[parent] = key
    return best


def merge_best(into: Best, other: Best) -> Best:
    for parent, key in other.items():
        if key > into.get(parent, (-(10**9), 0)):
            into[parent] = key
    return into


def read_shard(
    path: str,
    start: int,
    end: int,
    *,
    source: str,
    site: str,
    top: dict[int, int],
    rules: StackExchangeFilters,
    seed: int,
    max_chars: int,
    stats: Stats,
) -> Iterator[Item]:
    """Pass 2: top answers that obey LIMA's rules, and the questions they answer.

    `top` maps question id -> its top answer id (only questions whose top answer can pass the
    score rule). Yields `se_answer` / `se_question` partial items and rejections.
    """
    answer_ids = set(top.values())
    for raw in iter_rows(path, start, end, max_chars):
        if raw.attrs is None:
            rule, _, detail = (raw.error or "malformed").partition(": ")
            stats.count_read(source)
            stats.count_drop(source, rule)
            yield reject(source, path, f"byte {raw.offset}", rule, detail, raw.excerpt)
            continue
        kind = raw.attrs.get("PostTypeId")
        if kind == "1":
            qid = _int(raw.attrs.get("Id"), -1)
            if qid in top:
                yield _question(raw.attrs, qid, site, seed, rules.body_prompt_fraction)
        elif kind == "2":
            stats.count_read(source)
            yield from _answer(raw.attrs, path, source, answer_ids, rules, stats)


def _question(attrs: dict[str, str], qid: int, site: str, seed: int, fraction: float) -> Item:
    title = (attrs.get("Title") or "").strip()
    # Paper: "we randomly select the title as the prompt for some examples, and the description
    # for others". Seeded per (site, question) so shards and reruns agree.
    use_body = random.Random(f"{seed}:{site}:{qid}").random() < fraction
    return {
        "type": "se_question",
        "qid": qid,
        "title": title,
        "use_body": use_body,
        "body": strip_links(html_to_markdown(attrs.get("Body") or "")) if use_body else "",
        "tags": re.findall(r"<([^>]+)>", attrs.get("Tags") or "")
        or [t for t in (attrs.get("Tags") or "").split("|") if t],
        "self_contained": title_self_contained(title),
    }


def _answer(
    attrs: dict[str, str],
    path: str,
    source: str,
    answer_ids: set[int],
    rules: StackExchangeFilters,
    stats: Stats,
) -> Iterator[Item]:
    aid = _int(attrs.get("Id"), -1)
    score = _int(attrs.get("Score"))
    if aid not in answer_ids:
        rule = "not_top_answer" if score >= rules.min_score else "score_below_min"
        stats.count_drop(source, rule)
        yield reject(source, path, aid, rule, f"score {score}")
        return
    markdown = html_to_markdown(attrs.get("Body") or "")
    failure = answer_failure(markdown, score, rules)
    if failure:
        stats.count_drop(source, failure)
        yield reject(source, path, aid, failure, f"score {score}, {len(markdown)} chars", markdown)
        return
    yield {
        "type": "se_answer",
        "aid": aid,
        "qid": _int(attrs.get("ParentId"), -1),
        "score": score,
        "markdown": markdown,
        "file": path,
    }


def join(
    answers: list[Item],
    questions: dict[int, Item],
    source: str,
    site: str,
    stats: Stats,
    rules: StackExchangeFilters,
) -> Iterator[Item]:
    """Pair each kept answer with its question; the prompt is the title or the body."""
    for answer in answers:
        question = questions.get(answer["qid"])
        where = (answer["file"], answer["aid"])
        if question is None:
            stats.count_drop(source, "question_missing")
            yield reject(source, *where, "question_missing", f"ParentId {answer['qid']}")
            continue
        if rules.require_title_question and not question["self_contained"]:
            stats.count_drop(source, "title_not_self_contained")
            yield reject(source, *where, "title_not_self_contained", question["title"])
            continue
        prompt = (
            question["body"] if question["use_body"] and question["body"] else question["title"]
        )
        if not prompt:
            stats.count_drop(source, "empty_prompt")
            yield reject(source, *where, "empty_prompt")
            continue
        meta: dict[str, Any] = {
            "site": site,
            "score": answer["score"],
            "question_id": answer["qid"],
            "prompt_from": "body" if prompt is question["body"] else "title",
        }
        yield doc(
            source,
            answer["file"],
            answer["aid"],
            [prompt, answer["markdown"]],
            tags=question["tags"],
            meta=meta,
        )
