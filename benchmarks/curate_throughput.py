"""Curation throughput: lima-run's pipeline vs datatrove on the same Stack Exchange dump.

Generates a Posts.xml of N posts by perturbing the shared beer.stackexchange.com sample (ids
remapped per copy, ~10% of words and the scores perturbed), then runs, each in a fresh process:

  lima      parse Posts.xml (2 passes) + LIMA's rules + HTML->Markdown + exact/near dedup,
            on Ray Data
  lima-all  the same with every rule relaxed, so every top answer is converted and MinHashed
  datatrove JsonlReader + filter + MinHash dedup (signatures, buckets, clusters, filter), with
            (a) LIMA's per-document rules as a LambdaFilter, (b) GopherQualityFilter
            datatrove gets a pre-extracted JSONL of the answers (plain text): it has no Posts.xml
            reader, and the extraction is not timed, which favours datatrove.

Also: peak memory (RSS of the process tree, sampled) at 1x and 4x input, and speed-up from 1 to
2 Ray workers. Usage:
  .venv/bin/python benchmarks/curate_throughput.py --posts 200000
  .venv/bin/python benchmarks/curate_throughput.py --posts 5000 --datatrove-limit 2000   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "stackexchange" / "beer.stackexchange.com_Posts.xml"
FALLBACK = REPO / "examples" / "data" / "stackexchange" / "beer.stackexchange.com_Posts.xml"
ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
    # Ray runs its workers at nice 15 by default; datatrove's processes run at nice 0. On a shared
    # machine that alone would starve Ray's workers, so both run at the same priority here.
    "RAY_worker_niceness": "0",
    "PYTHONPATH": str(REPO),
}
WORD = re.compile(r"(?<=[\s>])([A-Za-z]{3,})(?=[\s<.,;:!?])")
VOCAB = [
    "malt",
    "hop",
    "yeast",
    "barley",
    "lager",
    "stout",
    "cask",
    "keg",
    "pint",
    "brew",
    "wort",
    "mash",
    "boil",
    "ferment",
    "cellar",
    "bitter",
    "sweet",
    "roast",
    "amber",
    "golden",
    "hazy",
    "crisp",
    "dry",
]


# ---------------------------------------------------------------- input generation
def generate(n_posts: int, folder: Path, shards: int = 4) -> tuple[Path, Path, int]:
    """(Posts.xml, folder of answer JSONL for datatrove, answers written)."""
    from lxml import etree, html

    sample = SAMPLE if SAMPLE.is_file() else FALLBACK
    rows = [
        dict(etree.fromstring(line.strip()).attrib)
        for line in sample.read_bytes().splitlines()
        if line.strip().startswith(b"<row")
    ]
    offset = max(int(r["Id"]) for r in rows) + 1
    xml_path = folder / "beer.stackexchange.com_Posts.xml"
    jsonl = folder / "jsonl"
    jsonl.mkdir(parents=True, exist_ok=True)
    outs = [(jsonl / f"part{i}.jsonl").open("w") for i in range(shards)]
    rng = random.Random(0)
    answers = 0
    with xml_path.open("wb") as xml:
        xml.write(b'<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        for n in range(n_posts):
            copy, row = divmod(n, len(rows))
            attrs = _perturb(rows[row], copy, offset, rng)
            xml.write(b"  " + etree.tostring(etree.Element("row", **attrs)) + b"\n")
            if attrs.get("PostTypeId") == "2":
                body = attrs.get("Body") or "<p></p>"
                text = html.fromstring(body).text_content() if body.strip() else ""
                record = {
                    "id": attrs["Id"],
                    "text": text,
                    "metadata": {"score": int(attrs["Score"])},
                }
                outs[answers % shards].write(json.dumps(record) + "\n")
                answers += 1
        xml.write(b"</posts>\n")
    for handle in outs:
        handle.close()
    return xml_path, jsonl, answers


def _perturb(attrs: dict, copy: int, offset: int, rng: random.Random) -> dict:
    out = dict(attrs)
    if copy == 0:
        return out
    for key in ("Id", "ParentId", "AcceptedAnswerId"):
        if key in out:
            out[key] = str(int(out[key]) + copy * offset)
    out["Score"] = str(int(out.get("Score", "0")) + rng.randint(-2, 2))
    for key in ("Body", "Title"):
        if out.get(key):
            out[key] = WORD.sub(
                lambda m: rng.choice(VOCAB) if rng.random() < 0.1 else m.group(1), out[key]
            )
    return out


# ---------------------------------------------------------------- children (fresh processes)
def child_lima(xml: str, workers: int, relaxed: bool) -> dict:
    import ray

    started = time.perf_counter()
    ray.init(
        num_cpus=max(2, workers),
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    ray_start = time.perf_counter() - started
    from lima.curate.pipeline import filter_and_dedup
    from lima.spec.data import DataSpec

    rules = (
        {
            "min_score": -(10**6),
            "min_answer_chars": 0,
            "max_answer_chars": 10**7,
            "drop_first_person": False,
            "drop_other_answer_references": False,
            "drop_bare_urls": False,
            "require_title_question": False,
        }
        if relaxed
        else {}
    )
    spec = DataSpec.model_validate(
        {
            "sources": [{"name": "se", "kind": "stackexchange", "uri": xml, "quota": 1}],
            "filters": {"stackexchange": rules},
        }
    )
    with tempfile.TemporaryDirectory() as scratch, open(os.devnull, "w") as rejected:
        started = time.perf_counter()
        out = filter_and_dedup(spec, None, Path(scratch), rejected, workers=workers, cpus=1)
        seconds = time.perf_counter() - started
    import resource

    return {
        "seconds": seconds,
        "ray_start_s": ray_start,
        "kept": len(out.docs),
        "driver_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child_datatrove(jsonl: str, work: str, workers: int, filter_name: str, limit: int) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.filters import GopherQualityFilter, LambdaFilter
    from datatrove.pipeline.readers import JsonlReader

    from lima.curate.rules import first_person, has_bare_url, refers_to_other_answers

    def lima_rules(doc) -> bool:  # the per-document part of LIMA's Stack Exchange rules
        text = doc.text
        return (
            doc.metadata.get("score", 0) >= 10
            and 1200 <= len(text) <= 4096
            and not first_person(text)
            and not refers_to_other_answers(text)
            and not has_bare_url(text)
        )

    def make_filter():
        return LambdaFilter(lima_rules) if filter_name == "lima" else GopherQualityFilter()

    config = MinhashConfig()
    tasks = len(list(Path(jsonl).glob("*.jsonl")))
    per_task = max(1, limit // tasks) if limit > 0 else -1
    common = {"logging_dir": f"{work}/logs", "skip_completed": False}
    stages = [
        LocalPipelineExecutor(
            [
                JsonlReader(jsonl, limit=per_task),
                make_filter(),
                MinhashDedupSignature(f"{work}/sigs", config=config),
            ],
            tasks=tasks,
            workers=workers,
            **{**common, "logging_dir": f"{work}/l1"},
        ),
        LocalPipelineExecutor(
            [MinhashDedupBuckets(f"{work}/sigs", f"{work}/buckets", config=config)],
            tasks=config.num_buckets,
            workers=workers,
            **{**common, "logging_dir": f"{work}/l2"},
        ),
        LocalPipelineExecutor(
            [MinhashDedupCluster(f"{work}/buckets", f"{work}/remove", config=config)],
            tasks=1,
            **{**common, "logging_dir": f"{work}/l3"},
        ),
        LocalPipelineExecutor(
            [
                JsonlReader(jsonl, limit=per_task),
                make_filter(),
                MinhashDedupFilter(f"{work}/remove"),
            ],
            tasks=tasks,
            workers=workers,
            **{**common, "logging_dir": f"{work}/l4"},
        ),
    ]
    started = time.perf_counter()
    for stage in stages:
        stage.run()
    return {"seconds": time.perf_counter() - started}


# ---------------------------------------------------------------- measuring
def measured(args: list[str]) -> dict:
    """Run a child, sampling the RSS of its whole process tree (Ray and datatrove workers too)."""
    import psutil

    process = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **ENV},
        text=True,
    )
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        parent = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.25)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = process.communicate()
    done.set()
    thread.join()
    if process.returncode:
        raise SystemExit(f"child {args[:2]} failed ({process.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result["tree_peak_mb"] = peak
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--posts", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--datatrove-limit", type=int, default=0, help="documents datatrove reads (0 = all answers)"
    )
    parser.add_argument(
        "--gopher-limit",
        type=int,
        default=20_000,
        help="documents the (slow, spaCy-based) Gopher run reads (0 = all)",
    )
    parser.add_argument("--skip-gopher", action="store_true")
    parser.add_argument("--skip-datatrove", action="store_true", help="lima's figures only")
    parser.add_argument("--skip-relaxed", action="store_true")
    parser.add_argument("--skip-4x", action="store_true")
    parser.add_argument("--workdir", type=Path, help="keep (and reuse) the generated inputs here")
    parser.add_argument("--skip-scaling", action="store_true", help="skip the 4x and 1-worker runs")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "lima":
            print(json.dumps(child_lima(rest[0], int(rest[1]), rest[2] == "relaxed")))
        else:
            print(
                json.dumps(child_datatrove(rest[0], rest[1], int(rest[2]), rest[3], int(rest[4])))
            )
        return
    run(args)


def cached_generate(n_posts: int, folder: Path, shards: int = 4) -> tuple[Path, Path, int]:
    meta = folder / "meta.json"
    if meta.is_file() and json.loads(meta.read_text())["posts"] == n_posts:
        answers = json.loads(meta.read_text())["answers"]
        return folder / "beer.stackexchange.com_Posts.xml", folder / "jsonl", answers
    xml, jsonl, answers = generate(n_posts, folder, shards)
    meta.write_text(json.dumps({"posts": n_posts, "answers": answers}))
    return xml, jsonl, answers


def run(args: argparse.Namespace) -> None:
    rows: list[tuple[str, str, float, float, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="lima-bench-") as tmp:
        tmp_path = args.workdir or Path(tmp)
        t0 = time.perf_counter()
        xml, jsonl, answers = cached_generate(args.posts, tmp_path / "x1")
        print(
            f"generated {args.posts} posts ({answers} answers, "
            f"{xml.stat().st_size / 2**20:.0f} MiB)"
            f" in {time.perf_counter() - t0:.0f}s",
            flush=True,
        )
        w = str(args.workers)

        def lima(label: str, path: Path, workers: str, mode: str, posts: int) -> dict:
            r = measured(["--child", "lima", str(path), workers, mode])
            rows.append(
                (
                    label,
                    f"{posts:,} posts",
                    r["seconds"],
                    posts / r["seconds"],
                    r["tree_peak_mb"],
                    f"kept {r['kept']}, driver {r['driver_peak_mb']:.0f} MiB, "
                    f"+{r['ray_start_s']:.0f}s Ray start",
                )
            )
            print(rows[-1], flush=True)
            return r

        base = lima(f"lima ({w} Ray workers)", xml, w, "paper", args.posts)
        if not args.skip_relaxed:
            lima(f"lima, rules relaxed ({w} workers)", xml, w, "relaxed", args.posts)
        peers = [] if args.skip_datatrove else ["lima"] + ([] if args.skip_gopher else ["gopher"])
        for name in peers:
            limit = args.datatrove_limit if name == "lima" else args.gopher_limit
            docs = min(answers, limit) if limit else answers
            shutil.rmtree(tmp_path / f"dt-{name}", ignore_errors=True)
            r = measured(
                [
                    "--child",
                    "datatrove",
                    str(jsonl),
                    str(tmp_path / f"dt-{name}"),
                    w,
                    name,
                    str(limit),
                ]
            )
            label = f"datatrove, {'LIMA rules' if name == 'lima' else 'Gopher'} ({w} workers)"
            # docs/s over posts: datatrove reads only the answers, so scale by posts per answer
            posts_equiv = docs * args.posts / answers
            rows.append(
                (
                    label,
                    f"{docs:,} answers",
                    r["seconds"],
                    posts_equiv / r["seconds"],
                    r["tree_peak_mb"],
                    "pre-extracted JSONL",
                )
            )
            print(rows[-1], flush=True)
        if not args.skip_scaling:
            one = lima("lima (1 Ray worker)", xml, "1", "paper", args.posts)
            print(f"speed-up 1 -> {w} workers: {one['seconds'] / base['seconds']:.2f}x", flush=True)
        if not args.skip_scaling and not args.skip_4x:
            xml4, _, _ = cached_generate(args.posts * 4, tmp_path / "x4", shards=1)
            lima(f"lima 4x input ({w} workers)", xml4, w, "paper", args.posts * 4)
    print()
    print(f"{'system':44} {'input':>18} {'seconds':>9} {'posts/s':>10} {'peak MiB':>9}  note")
    for label, size, seconds, rate, peak, note in rows:
        print(f"{label:44} {size:>18} {seconds:9.1f} {rate:10.0f} {peak:9.0f}  {note}")


if __name__ == "__main__":
    main()
