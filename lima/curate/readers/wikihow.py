"""wikiHow CSV in both public layouts.

`wikihowAll.csv`: headline, title, text (one article per record).
`wikihowSep.csv`: overview, headline, text, sectionLabel, title (one step per record; consecutive
records with the same title form one article).
LIMA 2.1: the title is the prompt ("How to cook an omelette?"), the body the response; "This
article..." becomes "The following answer..."; links, images and boilerplate sections are pruned.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lima.curate.readers.base import Reader
from lima.curate.readers.common import csv_header, iter_csv
from lima.curate.records import Doc, Rejection, doc
from lima.curate.text import strip_links
from lima.spec.data import WikiHowFilters

ALL = {"headline", "title", "text"}
SEP = {"overview", "headline", "text", "sectionLabel", "title"}
BOILERPLATE = re.compile(
    r"^(tips|warnings|things you'?ll need|references|sources and citations|related wikihows|video|"
    r"steps|ingredients)$",
    re.I,
)
_THIS_ARTICLE = re.compile(r"\b[Tt]his (article|wikiHow)( will)?")


@dataclass(slots=True, eq=False)
class Article:
    """One article as read, before LIMA's rules turn it into a doc (never leaves the reader)."""

    row: int
    title: str
    body: str


@dataclass
class WikiHowReader(Reader):
    rules: WikiHowFilters

    def read(self) -> Iterator[Doc | Rejection]:
        header = set(csv_header(self.path))
        if header >= SEP:
            articles = self._sep_articles()
        elif header >= ALL:
            articles = self._all_articles()
        else:
            yield self.drop("header", "unknown_layout", f"columns {sorted(header)}")
            return
        for item in articles:
            yield item if isinstance(item, Rejection) else self._finish(item)

    def _all_articles(self) -> Iterator[Article | Rejection]:
        for number, row, error in iter_csv(self.path, self.max_chars):
            self.counted()
            if row is None:
                yield self.bad_row(number, error)
                continue
            yield Article(number, row["title"], row["text"])

    def _sep_articles(self) -> Iterator[Article | Rejection]:
        current: dict[str, Any] | None = None
        for number, row, error in iter_csv(self.path, self.max_chars):
            if row is None:
                self.counted()
                yield self.bad_row(number, error)
                continue
            if current is None or row["title"] != current["title"]:
                if current is not None:
                    yield _sep_body(current)
                self.counted()
                current = {
                    "row": number,
                    "title": row["title"],
                    "overview": row["overview"],
                    "parts": [],
                }
            current["parts"].append(
                (row["sectionLabel"].strip(), row["headline"].strip(), row["text"].strip())
            )
        if current is not None:
            yield _sep_body(current)

    def _finish(self, article: Article) -> Doc | Rejection:
        body = _prune(article.body)
        title = article.title.strip()
        row, rules = article.row, self.rules
        if not title:
            return self.drop(row, "empty_title", text=body)
        if len(body) < rules.min_response_chars:
            return self.drop(row, "response_too_short", f"{len(body)} chars", body)
        if len(body) > rules.max_response_chars:
            return self.drop(row, "response_too_long", f"{len(body)} chars", body)
        return doc(self.source, self.path, row, [_prompt(title), body], meta={"title": title})


def _sep_body(article: dict[str, Any]) -> Article:
    lines = [article["overview"].strip(), ""] if article["overview"].strip() else []
    label, step = None, 0
    for section, headline, text in article["parts"]:
        if section and section != label and not BOILERPLATE.match(section):
            lines += [f"## {section}", ""]
            label, step = section, 0
        step += 1
        lines.append(f"{step}. {headline} {text}".strip())
    return Article(article["row"], article["title"], "\n".join(lines))


def _prune(body: str) -> str:
    """Drop boilerplate sections (Tips, Warnings, ...) and links; rewrite "This article"."""
    kept: list[str] = []
    skipping = False
    for line in body.splitlines():
        heading = line.strip().strip("#=* ").strip()
        if line.lstrip().startswith(("#", "==")) or (heading and BOILERPLATE.match(heading)):
            skipping = bool(BOILERPLATE.match(heading))
            if skipping:
                continue
        if not skipping:
            kept.append(line.rstrip())
    text = strip_links("\n".join(kept))
    text = _THIS_ARTICLE.sub("The following answer", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _prompt(title: str) -> str:
    title = re.sub(r"(?<=[A-Za-z])\d$", "", title.strip()).strip()  # "...Online1" in wikihowAll
    if title and not title.lower().startswith("how to"):
        title = f"How to {title[0].lower()}{title[1:]}"
    return title.rstrip(" .") + ("" if title.endswith("?") else "?")
