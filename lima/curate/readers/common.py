"""Helpers shared by the small-file readers: tolerant line and CSV iteration."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator

from lima.curate.text import has_invalid_utf8

# The csv module's own limit guards memory too; ours is applied per field after reading.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def iter_lines(path: str, max_chars: int) -> Iterator[tuple[int, str | None, str]]:
    """(line number, text or None, error) for every non-blank line; bad bytes and huge lines are
    reported, not raised, so one bad row never stops a file."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if len(raw) > max_chars:
                yield number, None, f"field_too_large: {len(raw)} bytes > {max_chars}"
                continue
            try:
                yield number, raw.decode("utf-8").lstrip("\ufeff"), ""
            except UnicodeDecodeError as error:
                yield number, None, f"invalid_utf8: {error.reason} at byte {error.start}"


def iter_csv(path: str, max_chars: int) -> Iterator[tuple[int, dict[str, str] | None, str]]:
    """(record number, row dict or None, error) over a CSV with a header; multi-line quoted
    fields are one record. Invalid UTF-8 is detected per record via surrogateescape."""
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip().lstrip("\ufeff") for h in next(reader)]
        except StopIteration:
            return
        except csv.Error as error:
            yield 0, None, f"malformed_csv: {error}"
            return
        number = 0
        while True:
            number += 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield number, None, f"malformed_csv: {error}"
                continue
            yield number, *_check(header, values, max_chars)


def csv_header(path: str) -> list[str]:
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        try:
            return [h.strip().lstrip("\ufeff") for h in next(csv.reader(handle))]
        except (StopIteration, csv.Error):
            return []


def _check(
    header: list[str], values: list[str], max_chars: int
) -> tuple[dict[str, str] | None, str]:
    if not any(v.strip() for v in values):
        return None, "empty_row"
    if len(values) != len(header):
        return None, f"wrong_column_count: {len(values)} values for {len(header)} columns"
    for name, value in zip(header, values, strict=True):
        if len(value) > max_chars:
            return None, f"field_too_large: {name} has {len(value)} chars > {max_chars}"
        if has_invalid_utf8(value):
            return None, f"invalid_utf8: in field {name}"
    return dict(zip(header, values, strict=True)), ""


def split_error(error: str) -> tuple[str, str]:
    rule, _, detail = error.partition(": ")
    return rule, detail
