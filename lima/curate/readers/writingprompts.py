"""Reddit WritingPrompts: fairseq `.wp_source`/`.wp_target` line pairs, or a CSV (prompt, story).

The fairseq release is tokenised (`do n't`, ` , `, `<newline>`); it is undone before the rules
run. LIMA 2.1: a prompt and its story; `[ WP ]`-style tags are stripped from the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

from lima.curate.readers.base import Reader
from lima.curate.readers.common import iter_csv
from lima.curate.records import Doc, Rejection, doc
from lima.curate.text import detokenize
from lima.spec.data import WritingPromptsFilters

_TAGS = re.compile(r"^\s*(?:[\[(]\s*([A-Za-z]{1,6})\s*[\])]\s*)+")
_TAG = re.compile(r"[\[(]\s*([A-Za-z]{1,6})\s*[\])]")


@dataclass
class WritingPromptsReader(Reader):
    rules: WritingPromptsFilters

    def read(self) -> Iterator[Doc | Rejection]:
        path = self.path
        if path.endswith(".wp_target"):
            return  # read together with its .wp_source
        pairs = (
            _pairs(path, self.max_chars)
            if path.endswith(".wp_source")
            else _csv_pairs(path, self.max_chars)
        )
        for row, prompt, story, error in pairs:
            self.counted()
            yield self.bad_row(row, error) if error else self._finish(row, prompt, story)

    def _finish(self, row: int, prompt: str, story: str) -> Doc | Rejection:
        rules = self.rules
        match = _TAGS.match(prompt)
        tags = [t.upper() for t in _TAG.findall(match.group(0))] if match else []
        prompt = detokenize(prompt[match.end() :] if match else prompt)
        story = detokenize(story)
        dropped = set(tags) & {t.upper() for t in rules.drop_tags}
        rule = (
            "tag_dropped"
            if dropped
            else "empty_prompt"
            if not prompt
            else "story_too_short"
            if len(story) < rules.min_story_chars
            else "story_too_long"
            if len(story) > rules.max_story_chars
            else None
        )
        if rule:
            return self.drop(row, rule, ",".join(sorted(dropped)) or f"{len(story)} chars", prompt)
        return doc(self.source, self.path, row, [prompt, story], tags=[t.lower() for t in tags])


def _pairs(path: str, max_chars: int) -> Iterator[tuple[int, str, str, str]]:
    target = str(Path(path).with_suffix(".wp_target"))
    if not Path(target).is_file():
        yield 0, "", "", f"missing_target: {target} not found"
        return
    # Line numbers must stay aligned, so blank lines are not skipped here.
    sources = _numbered(path, max_chars)
    targets = _numbered(target, max_chars)
    for left, right in zip_longest(sources, targets):
        if left is None or right is None:
            number = (left or right)[0]
            yield number, "", "", "unpaired_line: .wp_source and .wp_target differ in length"
            continue
        number, prompt, error_a = left
        _, story, error_b = right
        yield number, prompt or "", story or "", error_a or error_b


def _numbered(path: str, max_chars: int) -> Iterator[tuple[int, str | None, str]]:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if len(raw) > max_chars:
                yield number, None, f"field_too_large: {len(raw)} bytes > {max_chars}"
                continue
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n"), ""
            except UnicodeDecodeError as error:
                yield number, None, f"invalid_utf8: {error.reason} at byte {error.start}"


def _csv_pairs(path: str, max_chars: int) -> Iterator[tuple[int, str, str, str]]:
    for number, row, error in iter_csv(path, max_chars):
        if row is None:
            yield number, "", "", error
        elif "prompt" not in row or "story" not in row:
            yield number, "", "", "unknown_layout: needs prompt and story columns"
        else:
            yield number, row["prompt"], row["story"], ""
