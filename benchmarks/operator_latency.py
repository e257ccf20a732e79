"""Operator latency: 100 Experiments created at once against kmock -> first RayJob of each.

Runs the real operator (`kopf run -m lima_operator.handlers`, a separate process so its memory
is its own, logged in through a kubeconfig as on any cluster) against kmock's Kubernetes
emulator (serving KubeRay's RayJob CRD, which the operator checks every RayJob against) and a
real S3 API (moto's server, its own process) seeded with the demo data, as
`lima data push examples/data s3://lima/demo/data` seeds the chart's MinIO. It creates N copies
of examples/experiment-cluster.yaml concurrently and measures, for each, the time from its
creation to its first RayJob appearing in the API, and to its status being written (the operator
writes statuses after the first RayJobs of a burst: both are reported).

Rows, in one run: lima-run; lima-run again with one more Experiment whose own S3 endpoint
(`spec.storage.endpoint`) accepts connections and never answers, created just before the N
others; and the peer, a bare kopf operator that POSTs a fixed RayJob on create
(benchmarks/_peer_operator.py): the floor kopf + the API impose. Goal: p95 < 1 s, unchanged
with the hung endpoint. Reports p50/p95/max, the p95 to a written status, and, counted until
every status is written, the API requests and the operator's CPU per Experiment; and its RSS.

    .venv/bin/python benchmarks/operator_latency.py [--experiments 100] [--emulator lean|stock]

Profiling the operator: `BENCH_PROFILE=<prefix>` (cProfile, main thread, wall clock) or
`BENCH_YAPPI=<prefix>` (yappi, CPU clock, every thread, reset just before the burst so start-up
and the warm-up are left out); one .pstat file per operator run, read with `pstats`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import psutil
import yaml
from _lean_kmock import LeanEmulator

REPO = Path(__file__).resolve().parents[1]
NS = "bench"
RAYJOB_CRD = REPO.parent / "shared" / "schemas" / "ray.io_rayjobs.yaml"
CRDS = "apiextensions.k8s.io/v1/customresourcedefinitions"
S3_KEYS = {"LIMA_S3_ACCESS_KEY": "bench-access", "LIMA_S3_SECRET_KEY": "bench-secret-key"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def moto_server(work: Path) -> Iterator[str]:
    """moto's S3 server in its own process, seeded with examples/data; yields host:port."""
    port = free_port()
    log = (work / "moto.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://{endpoint}/moto-api/", timeout=1).close()
                break
            time.sleep(0.1)
        from lima.settings import Settings
        from lima.transfer import push

        settings = Settings(
            s3_endpoint=endpoint,
            s3_access_key=S3_KEYS["LIMA_S3_ACCESS_KEY"],
            s3_secret_key=S3_KEYS["LIMA_S3_SECRET_KEY"],
            s3_secure=False,
            s3_region="us-east-1",
            _env_file=None,
        )
        push(REPO / "examples/data", "s3://lima/demo/data", settings)
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def hung_endpoint() -> Iterator[int]:
    """A TCP port that accepts every connection and never answers; yields the port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        for conn in held:
            conn.close()


def write_kubeconfig(url: str, folder: Path) -> Path:
    path = folder / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "bench", "cluster": {"server": url}}],
                "users": [{"name": "bench", "user": {"token": "bench-token"}}],
                "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}],
                "current-context": "bench",
            }
        )
    )
    return path


def declare(emulator: kmock.KubernetesEmulator) -> None:
    kinds = {
        "lima-run.io/v1alpha1/experiments": "Experiment",
        "ray.io/v1/rayjobs": "RayJob",
        "v1/configmaps": "ConfigMap",
        "v1/events": "Event",
    }
    for resource, kind in kinds.items():
        info = emulator.resources[resource]
        info.kind, info.namespaced = kind, True
        info.verbs = {"list", "watch", "get", "patch", "create", "delete"}
    namespaces = emulator.resources["v1/namespaces"]
    namespaces.kind, namespaces.namespaced, namespaces.verbs = "Namespace", False, {"list", "watch"}
    crds = emulator.resources[CRDS]
    crds.kind, crds.namespaced, crds.verbs = "CustomResourceDefinition", False, {"get"}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    emulator.objects[CRDS, None, "rayjobs.ray.io"] = yaml.load(RAYJOB_CRD.read_text(), loader)


def present(emulator: kmock.KubernetesEmulator) -> tuple[set[str], set[str]]:
    """Names of the Experiments stored, and of the Experiments that have a RayJob.

    Reads only the keys of kmock's object store: iterating kmock's request log runs its
    request filters on every entry, which costs more CPU than the operator being measured.
    """
    experiments, with_job = set(), set()
    for resource, _namespace, name in emulator.objects:
        if resource.plural == "experiments" and name.startswith("exp-"):
            experiments.add(name)
        elif resource.plural == "rayjobs":
            with_job.add(name[: len("exp-000")] if name.startswith("exp-") else name[:7])
    return experiments, with_job


def with_status(emulator: kmock.KubernetesEmulator, names: set[str]) -> set[str]:
    """Which of the Experiments `names` have a status phase written."""
    found = set()
    for name in names:
        try:
            stored = emulator.objects["lima-run.io/v1alpha1/experiments", NS, name]
        except KeyError:
            continue
        if (stored.raw.get("status") or {}).get("phase"):
            found.add(name)
    return found


_YAPPI = """
import atexit, runpy, signal, sys, yappi
out = sys.argv.pop(1)
sys.argv.pop(0)  # now: kopf run ...
yappi.set_clock_type("cpu")
yappi.start(builtins=False, profile_threads=True)
signal.signal(signal.SIGUSR1, lambda *_: yappi.clear_stats())  # sent just before the burst
atexit.register(lambda: yappi.stop() or yappi.get_func_stats().save(out, type="pstat"))
runpy.run_module("kopf", run_name="__main__", alter_sys=True)
"""


def operator_command(kind: str) -> list[str]:
    profile = os.environ.get("BENCH_PROFILE")  # a file prefix: cProfile each operator run
    yappi = os.environ.get("BENCH_YAPPI")  # a file prefix: yappi (CPU, all threads) each run
    output = f"{profile or yappi}.{kind}.{time.monotonic_ns()}.pstat" if profile or yappi else ""
    python = [sys.executable, *(["-m", "cProfile", "-o", output] if profile else [])]
    if yappi:
        python = [sys.executable, "-c", _YAPPI, output]
    kopf = [*python, "-m", "kopf", "run", "--standalone", "--namespace", NS, "--quiet"]
    if yappi:
        kopf.remove("-m")  # _YAPPI runs kopf itself
    if kind == "lima-run":
        return [*kopf, "-m", "lima_operator.handlers"]
    return [*kopf, str(REPO / "benchmarks/_peer_operator.py")]


async def measure(
    kind: str,
    count: int,
    interval: float,
    work: Path,
    s3: str,
    hung: int | None = None,
    lean: bool = True,
) -> dict[str, Any]:
    """`hung`: the port of a never-answering S3 endpoint one extra Experiment uses."""
    document = yaml.safe_load((REPO / "examples/experiment-cluster.yaml").read_text())
    emulator_class = LeanEmulator if lean else kmock.KubernetesEmulator
    async with emulator_class() as emulator, kmock.Server(emulator):
        declare(emulator)
        emulator.objects["v1/configmaps", NS, "lima-run-pools"] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "lima-run-pools", "namespace": NS},
            "data": {"pools.yaml": "cpu: {cpusPerWorker: 4, memoryPerWorker: 16Gi}\n"},
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIMA_")}
        env.update(
            {
                "KUBECONFIG": str(write_kubeconfig(str(emulator.url), work)),
                "LIMA_OPERATOR_API_SERVER": str(emulator.url),  # the peer's only login
                "LIMA_OPERATOR_NAMESPACE": NS,
                "LIMA_OPERATOR_METRICS_PORT": "0",
                "LIMA_OPERATOR_RECONCILE_INTERVAL_S": str(interval),
                "LIMA_WORK_DIR": str(work / kind),
                "LIMA_S3_ENDPOINT": s3,
                "LIMA_S3_SECURE": "false",
                "LIMA_S3_REGION": "us-east-1",
                "LIMA_S3_RETRIES": "0",
                **S3_KEYS,
            }
        )
        log = (work / f"{kind}.log").open("wb")
        process = subprocess.Popen(
            operator_command(kind), env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            await warm_up(emulator, document, process, timeout=60)
            if process.poll() is not None:
                raise RuntimeError((work / f"{kind}.log").read_text()[-3000:])
            rss_idle = psutil.Process(process.pid).memory_info().rss
            timeout = float(os.environ.get("BENCH_TIMEOUT", 120))
            if hung is not None:  # its store calls hang while the others are created
                stuck = {**document, "spec": {**document["spec"]}}
                stuck["spec"]["storage"] = {
                    **stuck["spec"]["storage"],
                    "endpoint": f"127.0.0.1:{hung}",
                }
                await create(emulator, stuck, "stuck")
                await asyncio.sleep(0.5)
            if os.environ.get("BENCH_YAPPI"):
                process.send_signal(signal.SIGUSR1)
                await asyncio.sleep(0.2)
            quiet_collector()  # the emulator's own pauses are not the operator's latency
            before = _served(emulator)
            operator_cpu = psutil.Process(process.pid).cpu_times()
            following = asyncio.create_task(
                follow(emulator, count, timeout, statuses=kind == "lima-run")
            )
            await create_all(emulator, document, count)
            created, seen, written = await following
            requests = _served(emulator) - before
            rss = psutil.Process(process.pid).memory_info().rss
            cpu_after = psutil.Process(process.pid).cpu_times()
            cpu = (cpu_after.user + cpu_after.system) - (operator_cpu.user + operator_cpu.system)
        finally:
            process.terminate()  # kopf stops gracefully through the API: keep kmock serving
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()
    if not seen:
        raise RuntimeError(
            f"no RayJob seen; operator log:\n{(work / f'{kind}.log').read_text()[-3000:]}"
        )
    latencies = sorted(seen[n] - created[n] for n in seen if n in created)
    statuses = sorted(written[n] - created[n] for n in written if n in created) or [float("nan")]
    return {
        "operator": kind + (" (one S3 endpoint hung)" if hung is not None else ""),
        "experiments": count,
        "rayjobs": len(latencies),
        "p50": statistics.median(latencies),
        "p95": latencies[int(0.95 * len(latencies)) - 1],
        "max": latencies[-1],
        "status_p95": statuses[max(int(0.95 * len(statuses)) - 1, 0)],
        "statuses": len(written),
        "rss_idle_mib": rss_idle / 2**20,
        "rss_mib": rss / 2**20,
        "requests": requests,
        "cpu_ms": 1000 * cpu / count,
        "emulator": "lean" if lean else "stock",
    }


def quiet_collector() -> None:
    """No full garbage collection of this process (the emulator, standing in for the API
    server) in the middle of a burst: profiled, one took ~90 ms, delaying every watch event and
    answer, whichever operator was measured. What exists before the burst is left out of
    collections (gc.freeze) and collections are rarer; every run starts from the same state."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def _served(emulator: Any) -> int:
    """Requests served so far (kmock's own log, or the lean emulator's counter)."""
    return emulator._requests.served if isinstance(emulator, LeanEmulator) else len(list(emulator))


async def warm_up(emulator: Any, document: dict[str, Any], process: Any, timeout: float) -> None:
    """One Experiment first, until its RayJob appears: start-up is not part of the latency."""
    await create(emulator, document, "warm-up")
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and process.poll() is None:
        if "warm-up" in present(emulator)[1]:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the operator did not create the warm-up RayJob")


async def create(emulator: Any, document: dict[str, Any], name: str) -> None:
    body = {
        **document,
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": "1",
        },
    }
    async with emulator.post(
        f"/apis/lima-run.io/v1alpha1/namespaces/{NS}/experiments", json=body
    ) as response:
        response.raise_for_status()


async def create_all(emulator: Any, document: dict[str, Any], count: int) -> None:
    await asyncio.gather(*(create(emulator, document, f"exp-{i:03d}") for i in range(count)))


async def follow(
    emulator: Any, count: int, timeout: float, statuses: bool
) -> tuple[dict, dict, dict]:
    """When each Experiment appeared in the API, its first RayJob, and (`statuses`: the peer
    writes none) its first status (20 ms resolution). Runs while the Experiments are being
    created, until every one has both; all are stamped the same way."""
    created: dict[str, float] = {}
    first: dict[str, float] = {}
    written: dict[str, float] = {}
    deadline = time.perf_counter() + timeout
    wanted = count if statuses else 0
    while (len(written) < wanted or len(first) < count) and time.perf_counter() < deadline:
        experiments, with_job = present(emulator)
        now = time.perf_counter()
        for name in experiments:
            created.setdefault(name, now)
        for name in with_job & experiments:  # not the warm-up Experiment
            first.setdefault(name, now)
        if statuses:
            for name in with_status(emulator, set(created) - set(written)):
                written[name] = now
        await asyncio.sleep(0.02)
    return created, first, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=100)
    parser.add_argument("--interval", type=float, default=60.0, help="safety-net resync (s)")
    parser.add_argument(
        "--emulator",
        choices=("lean", "stock"),
        default="lean",
        help="lean: kmock without its request history (benchmarks/_lean_kmock.py); stock: kmock",
    )
    args = parser.parse_args()
    started_load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = []
    lean = args.emulator == "lean"
    with (
        tempfile.TemporaryDirectory() as work,
        moto_server(Path(work)) as s3,
        hung_endpoint() as port,
    ):
        for kind, hung in (("lima-run", None), ("lima-run", port), ("peer", None)):
            folder = Path(work) / f"{kind}-{hung or 0}"
            folder.mkdir()
            rows.append(
                asyncio.run(measure(kind, args.experiments, args.interval, folder, s3, hung, lean))
            )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average before: {started_load}; after: {load}")
    print(
        "| operator | emulator | experiments | RayJobs seen | p50 s | p95 s | max s "
        "| statuses written | status p95 s "
        "| API requests / Experiment | operator CPU ms / Experiment "
        "| RSS idle MiB | RSS after MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        status_p95 = f"{r['status_p95']:.3f}" if r["statuses"] else "-"
        print(
            f"| {r['operator']} | {r['emulator']} | {r['experiments']} | {r['rayjobs']} | "
            f"{r['p50']:.3f} | {r['p95']:.3f} | {r['max']:.3f} | "
            f"{r['statuses'] or '-'} | {status_p95} | "
            f"{r['requests'] / r['experiments']:.1f} | {r['cpu_ms']:.1f} | "
            f"{r['rss_idle_mib']:.0f} | {r['rss_mib']:.0f} |"
        )
    for row in rows[:2]:
        ok = row["p95"] < 1.0 and row["rayjobs"] == args.experiments
        print(f"goal p95 < 1 s, {row['operator']}: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
