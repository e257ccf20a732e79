"""The peer side of `curate_throughput.py`: datatrove pipelines doing lima-run's curation work.

datatrove has no Stack Exchange reader, so this module gives it one written the way a datatrove
user would: two `PipelineStep`s over byte ranges of `Posts.xml` (one range per rank, every row on
its own line as in the dumps), parsed with lxml's pull parser (`XMLPullParser`, elements cleared
as they are consumed). Step one finds each question's best answer (integers only); step two yields
the top answers that can pass the score rule as `Document`s. After that datatrove runs its own
components: `LambdaFilter` (lima's LIMA rules), `JsonlWriter`, and its four MinHash stages.

Both systems use the same HTML->Markdown function and the same rule function, so the comparison
measures reading, framework overhead, MinHash and dedup. datatrove's MinHash gets a whitespace word
tokenizer (lima shingles normalised text split on whitespace) instead of its default spaCy one,
which would only make it slower. It does not join questions to answers (lima does), which
favours datatrove.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path

from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup import (
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.filters import LambdaFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig
from datatrove.utils.word_tokenizers import WordTokenizer
from lxml import etree

from lima.curate.rules import answer_failure
from lima.curate.text import html_to_markdown
from lima.spec.data import StackExchangeFilters

RULES = StackExchangeFilters()
# lima's defaults: 5-word shingles, 128 permutations, 32-bit hashes.
CONFIG = MinhashConfig(
    n_grams=5, num_buckets=16, hashes_per_bucket=8, hash_config=HashConfig(precision=32)
)


class WhitespaceTokenizer(WordTokenizer):
    """lima's shingling splits normalised text on whitespace; datatrove gets the same."""

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


def _byte_range(path: str, rank: int, world_size: int) -> tuple[int, int]:
    size = os.path.getsize(path)
    return size * rank // world_size, size * (rank + 1) // world_size


def iter_posts(path: str, rank: int, world_size: int) -> Iterator[etree._Element]:
    """`<row>` elements whose line starts in this rank's byte range, streamed and cleared."""
    start, end = _byte_range(path, rank, world_size)
    parser = etree.XMLPullParser(events=("end",), tag="row")
    parser.feed(b"<posts>")
    with open(path, "rb") as handle:
        if start:
            handle.seek(start - 1)
            handle.readline()
        while handle.tell() < end:
            lines = handle.readlines(1 << 20)
            if not lines:
                break
            for line in lines:
                if line.lstrip().startswith(b"<row"):
                    parser.feed(line)
            for _, element in parser.read_events():
                yield element
                element.clear()
                while element.getprevious() is not None:
                    del element.getparent()[0]


class TopAnswers(PipelineStep):
    """Pass 1: question id -> (score, -answer id) of its best answer, one pickle per rank."""

    name = "top answers"

    def __init__(self, path: str, folder: str) -> None:
        super().__init__()
        self.path, self.folder = path, folder

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        best: dict[int, tuple[int, int]] = {}
        for row in iter_posts(self.path, rank, world_size):
            if row.get("PostTypeId") != "2" or row.get("Id") is None:
                continue
            key = (int(row.get("Score", "0")), -int(row.get("Id")))
            parent = int(row.get("ParentId", "-1"))
            if key > best.get(parent, (-(10**9), 0)):
                best[parent] = key
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        Path(self.folder, f"{rank:05d}.pkl").write_bytes(pickle.dumps(best))
        return data


class PostsReader(PipelineStep):
    """Pass 2: the top answers that can pass the score rule, as Documents (text = HTML body)."""

    name = "Posts.xml reader"
    type = "📖 - READER"

    def __init__(self, path: str, folder: str) -> None:
        super().__init__()
        self.path, self.folder = path, folder

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        best: dict[int, tuple[int, int]] = {}
        for part in sorted(Path(self.folder).glob("*.pkl")):
            for parent, key in pickle.loads(part.read_bytes()).items():
                if key > best.get(parent, (-(10**9), 0)):
                    best[parent] = key
        top = {-neg for score, neg in best.values() if score >= RULES.min_score}
        for row in iter_posts(self.path, rank, world_size):
            if row.get("PostTypeId") != "2" or int(row.get("Id", "-1")) not in top:
                continue
            self.stat_update("documents")
            yield Document(
                text=row.get("Body") or "",
                id=row.get("Id"),
                metadata={"score": int(row.get("Score", "0")), "question": row.get("ParentId")},
            )


class HtmlToMarkdown(PipelineStep):
    name = "HTML -> Markdown (lima's converter)"

    def run(self, data, rank: int = 0, world_size: int = 1):
        for document in data:
            document.text = html_to_markdown(document.text)
            yield document


def lima_rules(document: Document) -> bool:
    return answer_failure(document.text, document.metadata["score"], RULES) is None


def run(source: str, kind: str, work: str, workers: int) -> int:
    """The whole datatrove pipeline on `source` ("xml": Posts.xml, "jsonl": folder of answers);
    returns the number of documents kept after dedup."""
    tasks = workers if kind == "xml" else len(list(Path(source).glob("*.jsonl")))
    # fork, not datatrove's default forkserver: each of the five executors starts a pool, and
    # forkserver re-imports the modules in every pool (about 2x datatrove's wall time at 5,000
    # posts here); fork is the faster setting for the peer.
    common = {"skip_completed": False, "workers": workers, "start_method": "fork"}
    if kind == "xml":
        read = [PostsReader(source, f"{work}/top"), HtmlToMarkdown()]
        LocalPipelineExecutor(
            [TopAnswers(source, f"{work}/top")], tasks=tasks, logging_dir=f"{work}/l0", **common
        ).run()
    else:
        read = [JsonlReader(source)]
    stages = [
        LocalPipelineExecutor(
            [
                *read,
                LambdaFilter(lima_rules),
                JsonlWriter(f"{work}/kept", compression=None),
                MinhashDedupSignature(
                    f"{work}/sigs", config=CONFIG, language=WhitespaceTokenizer()
                ),
            ],
            tasks=tasks,
            logging_dir=f"{work}/l1",
            **common,
        ),
        LocalPipelineExecutor(
            [MinhashDedupBuckets(f"{work}/sigs", f"{work}/buckets", config=CONFIG)],
            tasks=CONFIG.num_buckets,
            logging_dir=f"{work}/l2",
            **common,
        ),
        LocalPipelineExecutor(
            [MinhashDedupCluster(f"{work}/buckets", f"{work}/remove", config=CONFIG)],
            tasks=1,
            logging_dir=f"{work}/l3",
            skip_completed=False,
            start_method="fork",
        ),
        LocalPipelineExecutor(
            [
                JsonlReader(f"{work}/kept"),
                MinhashDedupFilter(f"{work}/remove"),
                JsonlWriter(f"{work}/out", compression=None),
            ],
            tasks=tasks,
            logging_dir=f"{work}/l4",
            **common,
        ),
    ]
    for stage in stages:
        stage.run()
    out = Path(work, "out")
    return sum(1 for f in out.glob("*.jsonl") for _ in f.open()) if out.is_dir() else 0
