"""Curation throughput: lima-run vs datatrove doing the same work on the same inputs, in one run.

Inputs (generated once, cached in --workdir): a Posts.xml of N posts made by perturbing the shared
beer.stackexchange.com sample (ids remapped per copy, ~10 % of words and the scores changed), and
the same answers pre-extracted to JSONL (`{"id", "text": Markdown, "metadata": {"score"}}`, 4
files; the extraction is not timed).

Work, on both sides, with the same number of worker processes:
  xml    read Posts.xml, best answer per question, HTML->Markdown (the same converter), LIMA's
         Stack Exchange rules (the same function), MinHash signatures (5-word shingles, 128
         permutations, 32-bit), near-duplicate removal. lima: `filter_and_dedup` (the curate
         stage's read + rules + joins as Ray tasks, dedup on the driver; it also joins the questions
         and writes every rejection, which datatrove does not). datatrove:
         `_datatrove_posts.py` (a Posts.xml reader written for it + its own filter, writer and
         four MinHash stages).
  jsonl  read the pre-extracted answers, the same rules on the text, MinHash, dedup. lima: one
         Ray task per ~8 MiB of whole lines over Arrow (pyarrow.json, score rule vectorised),
         lima's rule function, `lima.curate.minhash`; the stage's `Deduplicator` on the driver,
         each shard's docs deduplicated as they arrive (in file order, as after the last shard).
         datatrove: JsonlReader + LambdaFilter + its four MinHash stages.

Each measurement is a fresh process; the peak RSS and the CPU seconds (user + system, start-up
included: a view that the machine's load distorts less than wall time) of its whole process tree
are sampled. lima's
seconds exclude `ray.init` and its workers' imports (a RayJob joins a running cluster; datatrove's
forked workers inherit its imports), reported apart. Also: lima on the
xml input with 1 worker (speed-up 1 -> N workers) and, with --scale-4x, on 4x the posts (driver
memory). Usage:
  .venv/bin/python benchmarks/curate_throughput.py                # 200,000 posts
  .venv/bin/python benchmarks/curate_throughput.py --posts 20000  # quick
  .venv/bin/python benchmarks/curate_throughput.py --repeat 3 --scale-4x   # what `make bench` runs
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections.abc import Callable
from itertools import pairwise
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
    "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "benchmarks")]),
}
WORD = re.compile(r"(?<=[\s>])([A-Za-z]{3,})(?=[\s<.,;:!?])")
VOCAB = ["malt", "hop", "yeast", "barley", "lager", "stout", "cask", "keg", "pint", "brew"]
VOCAB += ["wort", "mash", "boil", "ferment"]


# ---------------------------------------------------------------- input generation
def generate(n_posts: int, folder: Path, with_jsonl: bool, shards: int = 4) -> int:
    """Write folder/Posts.xml (and folder/jsonl/part*.jsonl); return the number of answers."""
    from lxml import etree

    from lima.curate.text import html_to_markdown

    sample = SAMPLE if SAMPLE.is_file() else FALLBACK
    rows = [
        dict(etree.fromstring(line.strip()).attrib)
        for line in sample.read_bytes().splitlines()
        if line.strip().startswith(b"<row")
    ]
    offset = max(int(r["Id"]) for r in rows) + 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "jsonl").mkdir(exist_ok=True)
    outs = [(folder / "jsonl" / f"part{i}.jsonl").open("w") for i in range(shards * with_jsonl)]
    rng = random.Random(0)
    answers = 0
    with (folder / "beer.stackexchange.com_Posts.xml").open("wb") as xml:
        xml.write(b'<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        for n in range(n_posts):
            copy, row = divmod(n, len(rows))
            attrs = _perturb(rows[row], copy, offset, rng)
            xml.write(b"  " + etree.tostring(etree.Element("row", **attrs)) + b"\n")
            if attrs.get("PostTypeId") != "2":
                continue
            if outs:
                text = html_to_markdown(attrs.get("Body") or "")
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
    return answers


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


def cached_inputs(n_posts: int, folder: Path, with_jsonl: bool = True) -> tuple[Path, Path, int]:
    """(Posts.xml, JSONL folder, answers), generated unless folder already holds them."""
    meta = folder / "meta.json"
    want = {"posts": n_posts, "jsonl": with_jsonl, "version": 2}
    if (
        meta.is_file()
        and {k: v for k, v in json.loads(meta.read_text()).items() if k in want} == want
    ):
        answers = json.loads(meta.read_text())["answers"]
    else:
        answers = generate(n_posts, folder, with_jsonl)
        meta.write_text(json.dumps({**want, "answers": answers}))
    return folder / "beer.stackexchange.com_Posts.xml", folder / "jsonl", answers


# ---------------------------------------------------------------- children (fresh processes)
def _tree_cpu() -> float:
    """User + system CPU seconds of this process and its descendants so far."""
    return sum(_cpu_by_role().values())


def _cpu_by_role() -> dict[str, float]:
    """CPU seconds so far of this process (the driver), of Ray's task workers (`ray::`) and of
    every other descendant (raylet, GCS, agents)."""
    import psutil

    me = psutil.Process()
    out = {"driver": 0.0, "workers": 0.0, "ray": 0.0}
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
            role = (
                "driver"
                if process.pid == me.pid
                else "workers"
                if process.name().startswith("ray::")
                else "ray"
            )
            out[role] += times.user + times.system
        except psutil.Error:
            pass
    return out


def _kill_children() -> None:
    import psutil

    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.kill()


def _ray_init(workers: int, attempts: int = 6) -> tuple[float, float]:
    """Start a local Ray; (seconds, CPU seconds of the process tree) taken. Ray waits a fixed
    30 s for its raylet to register, which a loaded machine can exceed: a failed start is
    retried."""
    import ray

    started = time.perf_counter()
    for attempt in range(1, attempts + 1):
        try:
            ray.init(
                num_cpus=max(2, workers), include_dashboard=False, log_to_driver=False,
                configure_logging=False,
            )  # fmt: skip
            break
        except Exception as error:  # Ray raises a bare Exception for this timeout
            ray.shutdown()
            _kill_children()  # a failed start leaves its GCS and helpers running
            if attempt == attempts or "timed out during startup" not in str(error):
                raise
    _warm_workers(workers)
    return time.perf_counter() - started, _tree_cpu()


def _warm_workers(workers: int) -> None:
    """Import the curation modules in each Ray worker before the clock starts, as datatrove's
    forked workers inherit the modules its parent imported before its clock starts."""
    import ray

    @ray.remote(num_cpus=1)
    def warm() -> None:
        import pyarrow.compute
        import pyarrow.json  # noqa: F401

        import lima.curate.extract
        import lima.curate.minhash  # noqa: F401

        time.sleep(1)  # hold the CPU so the tasks land on different workers

    ray.get([warm.remote() for _ in range(max(2, workers))])


def child_lima_xml(xml: str, workers: int) -> dict:
    ray_start, ray_cpu = _ray_init(workers)
    from lima.curate.pipeline import filter_and_dedup
    from lima.spec.data import DataSpec

    spec = DataSpec.model_validate(
        {"sources": [{"name": "se", "kind": "stackexchange", "uri": xml, "quota": 1}]}
    )
    last_shard = [0.0]

    def progress(**_: object) -> None:
        last_shard[0] = time.perf_counter()  # after the last call: the driver's dedup tail

    with tempfile.TemporaryDirectory() as scratch, open(os.devnull, "wb") as rejected:
        before = _cpu_by_role()
        started = time.perf_counter()
        out = filter_and_dedup(
            spec, None, Path(scratch), rejected, workers=workers, cpus=1, progress=progress
        )
        ended = time.perf_counter()
        after = _cpu_by_role()
    return {
        "cpu_split": {role: after[role] - before.get(role, 0.0) for role in after},
        "seconds": ended - started,
        "ray_start_s": ray_start,
        "ray_start_cpu_s": ray_cpu,
        "driver_tail_s": ended - last_shard[0],
        "kept": len(out.docs),
        **_driver_rss(),
    }


JSONL_SHARD_BYTES = 8 * 2**20


def jsonl_shards(files: list[str], shard_bytes: int = JSONL_SHARD_BYTES) -> list[dict]:
    """Byte ranges of whole lines, about `shard_bytes` each, in file order (the order the docs
    are deduplicated in, as with one shard per file)."""
    shards = []
    for path in files:
        size = os.path.getsize(path)
        cuts = [0]
        with open(path, "rb") as handle:
            for at in range(shard_bytes, size, shard_bytes):
                if at <= cuts[-1]:
                    continue
                handle.seek(at - 1)
                handle.readline()  # the next line start at or after `at`
                if handle.tell() < size:
                    cuts.append(handle.tell())
        cuts.append(size)
        shards += [
            {"id": len(shards) + i, "path": path, "start": a, "end": b}
            for i, (a, b) in enumerate(pairwise(cuts))
        ]
    return shards


def lima_jsonl_task(shard: dict, min_score: int, shingle: int, num_perm: int) -> dict:
    """One Ray task per byte range of a JSONL file: Arrow read, vectorised score rule, LIMA
    rules, signatures."""
    import pickle

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    from lima.curate.minhash import BUCKETS, sketches
    from lima.curate.records import doc
    from lima.curate.rules import answer_failure
    from lima.spec.data import StackExchangeFilters

    rules = StackExchangeFilters(min_score=min_score)
    with open(shard["path"], "rb") as handle:
        handle.seek(shard["start"])
        data = handle.read(shard["end"] - shard["start"])
    table = pj.read_json(pa.BufferReader(data))
    passing = table.filter(pc.greater_equal(pc.struct_field(table["metadata"], "score"), min_score))
    ids = passing["id"].to_pylist()
    texts = passing["text"].to_pylist()
    scores = pc.struct_field(passing["metadata"], "score").to_pylist()
    kept = [
        doc("se", shard["path"], i, ["", t], meta={"score": s})
        for i, t, s in zip(ids, texts, scores, strict=True)
        if answer_failure(t, s, rules) is None
    ]
    texts = [d.conversations[1] for d in kept]
    for item, (sig, counts, distinct) in zip(
        kept, sketches(texts, shingle, num_perm, BUCKETS), strict=True
    ):
        item.minhash, item.sketch = sig, (counts, distinct)  # as the curate stage's shards do
    rejected = table.num_rows - len(kept)
    return {"id": shard["id"], "payload": pickle.dumps((kept, rejected), protocol=5)}


def child_lima_jsonl(folder: str, workers: int) -> dict:
    ray_start, ray_cpu = _ray_init(workers)
    from lima.curate.decontam import paused_gc
    from lima.curate.dedup import Deduplicator, text_hash
    from lima.curate.parallel import run_shards
    from lima.curate.records import Doc
    from lima.curate.stats import Stats
    from lima.spec.data import DataSpec

    spec = DataSpec.model_validate(
        {"sources": [{"name": "se", "kind": "authored", "uri": folder, "quota": 1}]}
    )
    files = sorted(str(p) for p in Path(folder).glob("*.jsonl"))
    started = time.perf_counter()
    shards = jsonl_shards(files)
    params = {
        "min_score": spec.filters.stackexchange.min_score,
        "shingle": spec.dedup.shingle_size,
        "num_perm": spec.dedup.num_perm,
    }
    dedup = Deduplicator.from_spec(spec.dedup)
    kept, stats = [], Stats()
    with paused_gc():  # as the curate stage's driver does (lima.curate.pipeline)
        # Results come back in shard order while later shards are read: each shard's docs are
        # deduplicated as they arrive, in the same order as after all of them.
        for (items, _rejected), _lines in run_shards(lima_jsonl_task, shards, params, workers, 1):
            for item in items:
                item.hash = text_hash("\n".join(item.conversations))
            kept += [item for item in dedup(items, stats) if isinstance(item, Doc)]
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "ray_start_s": ray_start,
        "ray_start_cpu_s": ray_cpu,
        "kept": len(kept),
        "shards": len(shards),
        **_driver_rss(),
    }


def child_datatrove(source: str, kind: str, work: str, workers: int) -> dict:
    import _datatrove_posts

    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    kept = _datatrove_posts.run(source, kind, work, workers)
    return {"seconds": time.perf_counter() - started, "kept": kept, **_driver_rss()}


def _driver_rss() -> dict:
    import resource

    return {"driver_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


CHILDREN = {
    "lima-xml": lambda a: child_lima_xml(a[0], int(a[1])),
    "lima-jsonl": lambda a: child_lima_jsonl(a[0], int(a[1])),
    "datatrove": lambda a: child_datatrove(a[0], a[1], a[2], int(a[3])),
}


# ---------------------------------------------------------------- measuring
def measured(args: list[str]) -> dict:
    """Run a child, sampling the RSS of its whole process tree (Ray and datatrove workers too)."""
    import psutil

    process = subprocess.Popen(
        [sys.executable, __file__, "--child", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **ENV},
        text=True,
    )
    peak = 0.0
    cpu: dict[int, float] = {}  # pid -> user + system seconds, last seen
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        parent = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20)
                for p in tree:
                    times = p.cpu_times()
                    cpu[p.pid] = times.user + times.system
            except psutil.Error:
                pass
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    load = os.getloadavg()[0]
    out, err = process.communicate()
    done.set()
    thread.join()
    if process.returncode:
        raise SystemExit(f"child {args[:2]} failed ({process.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(
        tree_peak_mb=peak, tree_cpu_s=sum(cpu.values()), load=max(load, os.getloadavg()[0])
    )
    return result


def run(args: argparse.Namespace) -> dict:
    workdir = args.workdir or Path(tempfile.gettempdir()) / "lima-bench" / f"curate-{args.posts}"
    t0 = time.perf_counter()
    xml, jsonl, answers = cached_inputs(args.posts, workdir)
    print(
        f"inputs: {args.posts:,} posts ({xml.stat().st_size / 2**20:.0f} MiB Posts.xml), "
        f"{answers:,} answers in JSONL ({time.perf_counter() - t0:.0f}s to prepare)",
        flush=True,
    )
    w = str(args.workers)
    rows: list[dict] = []

    def record(label: str, system: str, kind: str, docs: int, r: dict) -> dict:
        r.update(label=label, system=system, kind=kind, docs=docs, rate=docs / r["seconds"])
        rows.append(r)
        extra = (
            f", +{r['ray_start_s']:.1f}s ({r['ray_start_cpu_s']:.1f} CPU s) ray.init"
            if "ray_start_s" in r
            else ""
        )
        if "driver_tail_s" in r:
            extra += f", dedup after the last shard {r['driver_tail_s']:.2f}s"
        if "cpu_split" in r:
            split = r["cpu_split"]
            extra += (
                f", CPU s while timed: driver {split['driver']:.2f} / Ray workers "
                f"{split['workers']:.2f} / raylet, GCS, agents {split['ray']:.2f}"
            )
        print(
            f"  {label:44} {r['seconds']:7.1f}s {r['rate']:9,.0f} docs/s  kept {r['kept']:5}  "
            f"CPU {r['tree_cpu_s'] - r.get('ray_start_cpu_s', 0):6.1f}s  "
            f"tree {r['tree_peak_mb']:5.0f} MiB  "
            f"driver {r['driver_peak_mb']:4.0f} MiB  "
            f"load {r['load']:.1f}{extra}",
            flush=True,
        )
        return r

    dt_work = str(workdir / "datatrove")
    runs: dict[str, list[dict]] = {}

    def measure(key: str, label: str, system: str, kind: str, docs: int, child: list[str]) -> None:
        runs.setdefault(key, []).append(record(label, system, kind, docs, measured(child)))

    # Each repeat runs every configuration once, so all of them see the machine's load swings;
    # the best (fastest) run of each is compared.
    for attempt in range(1, args.repeat + 1):
        suffix = f" #{attempt}" if args.repeat > 1 else ""
        inputs = [("xml", xml, args.posts), ("jsonl", jsonl, answers)]
        for kind, source, docs in inputs[: 1 if args.scaling_only else 2]:
            measure(
                f"lima-{kind}",
                f"lima-run, {kind} ({w} workers){suffix}",
                "lima",
                kind,
                docs,
                [f"lima-{kind}", str(source), w],
            )
            if not args.scaling_only:
                measure(
                    f"datatrove-{kind}",
                    f"datatrove, {kind} ({w} workers){suffix}",
                    "datatrove",
                    kind,
                    docs,
                    ["datatrove", str(source), kind, dt_work, w],
                )
        measure(
            "lima-xml-1",
            f"lima-run, xml (1 worker){suffix}",
            "lima",
            "xml",
            args.posts,
            ["lima-xml", str(xml), "1"],
        )
    best = {key: min(found, key=lambda r: r["seconds"]) for key, found in runs.items()}
    results: dict = {}
    for kind in ("xml", "jsonl"):
        if f"datatrove-{kind}" in best:
            results[f"ratio_{kind}"] = (
                best[f"lima-{kind}"]["rate"] / best[f"datatrove-{kind}"]["rate"]
            )
    two = best["lima-xml"]
    results["speedup"] = best["lima-xml-1"]["seconds"] / two["seconds"]
    if args.scale_4x:
        xml4, _, _ = cached_inputs(args.posts * 4, workdir.with_name(workdir.name + "-x4"), False)
        four = record(
            f"lima-run, xml 4x input ({w} workers)",
            "lima",
            "xml",
            args.posts * 4,
            measured(["lima-xml", str(xml4), w]),
        )
        results["driver_mb_1x_4x"] = (two["driver_peak_mb"], four["driver_peak_mb"])
    print(f"\nbest of {args.repeat} run(s) each:")
    for kind, name in (("xml", "Posts.xml"), ("jsonl", "JSONL")):
        if f"ratio_{kind}" in results:
            print(
                f"lima-run / datatrove, {name} input: {results[f'ratio_{kind}']:.2f}x (goal >= 2.0)"
            )
    print(f"lima-run speed-up 1 -> {w} workers: {results['speedup']:.2f}x (goal >= 1.7)")
    if "driver_mb_1x_4x" in results:
        a, b = results["driver_mb_1x_4x"]
        print(f"lima-run driver peak RSS 1x -> 4x input: {a:.0f} -> {b:.0f} MiB")
    return results


def profile(xml: Path, repeat: int) -> dict[str, float]:
    """CPU seconds of each part of the Stack Exchange path, all in this process (no Ray): pass 1
    and pass 2 as the workers run them, the driver's merge and its joins and dedup; the best of
    `repeat` runs of each part (the machine's load inflates CPU seconds too)."""
    import gc
    from collections import defaultdict

    from lima.curate import extract, pipeline
    from lima.curate.readers import stackexchange as se
    from lima.curate.readers.best_answers import BestAnswers
    from lima.curate.shards import expand_sources, plan
    from lima.curate.stats import Stats
    from lima.spec.data import DataSpec

    spec = DataSpec.model_validate(
        {"sources": [{"name": "se", "kind": "stackexchange", "uri": str(xml), "quota": 1}]}
    )
    config, floor = spec.model_dump(mode="json"), spec.filters.stackexchange.min_score
    inner: dict[str, float] = defaultdict(float)

    def timed(module: object, name: str, label: str) -> None:
        function = getattr(module, name)

        def wrapper(*args: object, **kwargs: object) -> object:
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                inner[label] += time.process_time() - started

        setattr(module, name, wrapper)

    timed(se, "html_to_markdown", "  HTML -> Markdown (answers; questions at the join)")
    timed(se, "answer_failure", "  answer rules (pass 2)")
    timed(extract, "_sign", "  MinHash signatures (pass 2)")
    timed(extract, "rejection_lines", "rejection lines (both passes, in the workers)")
    best: dict[str, float] = {}
    with open(os.devnull, "wb") as sink:
        for _ in range(repeat):
            inner.clear()
            parts: dict[str, float] = {}
            with tempfile.TemporaryDirectory() as scratch:
                shards, _ = plan(spec, expand_sources(spec, None), Path(scratch), None)
            # What earlier parts left is frozen out of the garbage collector, as a worker's small
            # heap holds nothing but its shard: otherwise every collection would walk all of it.
            gc.collect()
            gc.freeze()
            started = time.process_time()
            scans = _in_process(extract.scan_task, shards, config)
            parts["pass 1: every row, best answer per question"] = time.process_time() - started
            started = time.process_time()
            out, rejected = pipeline.Filtered(), sink  # written as the stage writes its file
            best_answers: dict[str, BestAnswers] = defaultdict(BestAnswers)
            for shard, ((_, packed, _, stats), lines) in zip(shards, scans, strict=True):
                out.stats.merge(Stats.from_dict(stats))
                rejected.write(lines)
                best_answers[shard["uri"]].add(packed)
            pass_1 = [part for (part, *_), _ in scans]
            pipeline.plan_pass_2(shards, pass_1, best_answers, floor)
            parts["driver: merge pass 1, select"] = time.process_time() - started
            gc.collect()
            gc.freeze()
            started = time.process_time()
            results = _in_process(extract.extract_task, shards, config)
            parts["pass 2: top answers, their questions: convert, rules, join, sign"] = (
                time.process_time() - started
            )
            gc.collect()
            gc.freeze()
            started = time.process_time()
            streamed = pipeline._Streamed(spec)
            for (items, _, stats), lines in results:
                out.stats.merge(Stats.from_dict(stats))
                rejected.write(lines)
                streamed.add(items)
            streamed.finish(out)
            parts["driver: dedup"] = time.process_time() - started
            gc.unfreeze()
            parts.update(inner)
            best = {k: min(v, best.get(k, v)) for k, v in parts.items()}
    print(f"CPU seconds per part, best of {repeat} (load {os.getloadavg()[0]:.1f}):")
    for label, seconds in best.items():
        print(f"  {label:48} {seconds:6.2f}")
    return best


def _in_process(task: Callable, shards: list[dict], config: dict) -> list[tuple]:
    """Every shard through `task` in this process, as `run_shards` yields them from Ray."""
    import pickle

    out = []
    for shard in shards:
        result = task(shard, config)
        out.append((pickle.loads(result["payload"]), result["lines"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--posts", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="where the generated inputs are cached")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each configuration; the best counts"
    )
    parser.add_argument("--scale-4x", action="store_true", help="also run lima on 4x the posts")
    parser.add_argument(
        "--scaling-only", action="store_true", help="lima only: 1 vs N workers (and --scale-4x)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="CPU seconds per part of lima's xml path, no Ray"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](args.child[1:])))
        return
    if not (SAMPLE.is_file() or FALLBACK.is_file()):
        print(f"skipped: no Stack Exchange sample at {SAMPLE}")
        return
    if args.profile:
        workdir = (
            args.workdir or Path(tempfile.gettempdir()) / "lima-bench" / f"curate-{args.posts}"
        )
        profile(cached_inputs(args.posts, workdir)[0], args.repeat)
        return
    run(args)


if __name__ == "__main__":
    main()
