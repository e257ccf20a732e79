"""Text helpers: HTML to Markdown, fairseq detokenisation, normalisation, code-aware checks."""

from __future__ import annotations

import re
import unicodedata

from html_to_markdown import ConversionError
from html_to_markdown._html_to_markdown import ConversionOptions, HeadingStyle, convert

# LIMA 2.1: "we also remove links, images, and other HTML tags from the response, retaining only
# code blocks and lists". Stripping <a> keeps its text; stripping <img> leaves nothing.
# html-to-markdown (Rust core) replaced markdownify here: 5x faster, the same Markdown for ~90% of
# Stack Exchange bodies, the rest differing in line breaks (see docs/curation.md). The options
# are built once in the native form (the package's `convert` rebuilds them on every call, which
# cost more than the conversion of a short body).
_OPTIONS = ConversionOptions(
    strip_tags=["a", "img"],
    heading_style=HeadingStyle.ATX,
    bullets="-",
    escape_asterisks=False,
    escape_underscores=False,
    escape_misc=False,
    autolinks=False,
    extract_metadata=False,
)
_BLANK_RUNS = re.compile(r"\n{3,}")
_FENCE = re.compile(r"```.*?(```|$)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_INDENTED_CODE = re.compile(r"^(?: {4}|\t).*$", re.M)
# ASCII characters that are neither word characters nor whitespace (what `[^\w\s]` matches),
# as a translate table: one C pass instead of a regex substitution per character.
_ASCII_PUNCT = str.maketrans({chr(c): " " for c in range(128) if not re.match(r"[\w\s]", chr(c))})
URL = re.compile(r"(?:https?://|ftp://|www\.)\S+", re.I)
MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


class HtmlError(ValueError):
    """A body the converter cannot read; the row is rejected as malformed_html."""


def html_to_markdown(html: str) -> str:
    """Markdown of a Stack Exchange body: code blocks and lists kept, links reduced to text."""
    if not html:
        return ""
    try:
        text = convert(html, _OPTIONS).content
    except (ConversionError, UnicodeError) as error:
        raise HtmlError(f"{type(error).__name__}: {error}") from error
    if "\n\n\n" in text:  # the regex alone scans every position (no literal to skip to)
        text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip()


def prose(text: str) -> str:
    """The text outside code (fenced, indented and inline), for rules about the writing itself."""
    text = _FENCE.sub(" ", text)
    if text.startswith(("    ", "\t")) or "\n    " in text or "\n\t" in text:
        text = _INDENTED_CODE.sub(" ", text)  # only where a line can match (no literal prefix)
    return _INLINE_CODE.sub(" ", text)


def strip_links(text: str) -> str:
    """Markdown links become their text, images disappear, bare URLs are removed."""
    text = MARKDOWN_LINK.sub(lambda m: "" if m.group(0).startswith("!") else m.group(1), text)
    return URL.sub("", text)


def normalise(text: str) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive form for exact dedup hashing."""
    if text.isascii():  # the common case skips the per-character Unicode work
        return " ".join(text.lower().translate(_ASCII_PUNCT).split())
    text = unicodedata.normalize("NFKD", text).casefold()
    # Combining marks dropped by one translate built from the text's few distinct characters
    # (a Python test per character was most of this path's time).
    marks = {ord(ch): None for ch in set(text) if unicodedata.combining(ch)}
    if marks:
        text = text.translate(marks)
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


_DETOK_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\s*<newline>\s*"), "\n"),
    (re.compile(r"``\s*|\s*''"), '"'),
    (re.compile(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", re.I), r"\1"),
    (re.compile(r" ([’'])(s|re|ve|ll|d|m|t)\b", re.I), r"\1\2"),
    (re.compile(r"(\w) ([’']) (\w)"), r"\1\2\3"),
    (re.compile(r" ([.,!?;:%)\]}])"), r"\1"),
    (re.compile(r"([(\[{$]) "), r"\1"),
    (re.compile(r"[ \t]+\n"), "\n"),
    (re.compile(r"\n[ \t]+"), "\n"),
    (re.compile(r"[ \t]{2,}"), " "),
    (re.compile(r"\n{3,}"), "\n\n"),
]


def detokenize(text: str) -> str:
    """Undo fairseq WritingPrompts tokenisation (`do n't`, ` , `, ``` `` ```, `<newline>`)."""
    for pattern, replacement in _DETOK_RULES:
        text = pattern.sub(replacement, text)
    # Quotes: tokenised text writes `" word "`; glue the inside to the quote marks pairwise.
    parts = text.split('"')
    for i in range(1, len(parts), 2):
        parts[i] = parts[i].strip(" ")
    return '"'.join(parts).strip()


def has_invalid_utf8(text: str) -> bool:
    """True when text decoded with `surrogateescape` kept undecodable bytes."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)
