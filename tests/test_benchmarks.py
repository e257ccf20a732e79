"""`make bench` (benchmarks/run_all.py) runs every benchmark, each with arguments it accepts.

Cheap: no benchmark runs. Each script's own `main()` builds its real argparse parser, which parses
run_all's MODEST_ARGS for it and is stopped right there (in a fresh interpreter).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import run_all  # noqa: E402

PROBE = """
import argparse, importlib.util, json, sys

sys.path.insert(0, sys.argv[1])
CHECKS = json.loads(sys.argv[2])


class Parsed(Exception):
    pass


original = argparse.ArgumentParser.parse_args
current = []


def parse_then_stop(self, args=None, namespace=None):
    original(self, current, namespace)  # exits 2 on an argument the parser does not know
    raise Parsed


argparse.ArgumentParser.parse_args = parse_then_stop
outcome = []
for name, arguments in CHECKS:
    spec = importlib.util.spec_from_file_location(name, f"{sys.argv[1]}/{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    current[:] = arguments
    try:
        module.main()
        outcome.append([name, "main() returned without parsing"])
    except Parsed:
        outcome.append([name, "ok"])
    except SystemExit as stop:
        outcome.append([name, f"refused (exit {stop.code})"])
print(json.dumps(outcome))
"""


def test_run_all_lists_every_benchmark_script() -> None:
    expected = sorted(
        p.name for p in BENCHMARKS.iterdir() if p.suffix == ".py" and not p.name.startswith("_")
    )
    expected.remove("run_all.py")
    assert [p.name for p in run_all.scripts()] == expected
    assert set(run_all.MODEST_ARGS) <= {p.stem for p in run_all.scripts()}


def test_each_script_parser_accepts_its_modest_arguments() -> None:
    checks = [[name, args] for name, args in run_all.MODEST_ARGS.items()]
    # the probe can fail: a flag embed_throughput does not declare is refused
    checks.append(["embed_throughput", ["--no-such-flag", "1"]])
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(BENCHMARKS), json.dumps(checks)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome.pop() == ["embed_throughput", "refused (exit 2)"]
    assert outcome == [[name, "ok"] for name in run_all.MODEST_ARGS]
