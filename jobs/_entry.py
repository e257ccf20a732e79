"""What every RayJob runs: load the Experiment snapshot, run one stage, print its artifact URI.

`python -m jobs.<stage> --experiment <s3://.../spec.json | path>`; the operator passes the URI of
the spec snapshot it wrote to the artifact store, so the job needs no Kubernetes API access.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lima.errors import LimaError
from lima.runner import run_single_stage
from lima.settings import load_settings
from lima.spec.load import load_experiment


def main(stage: str, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m jobs.{stage}", description=__doc__)
    parser.add_argument("--experiment", required=True, help="s3:// URI or path of the spec")
    parser.add_argument("--force", action="store_true", help="recompute despite a cache hit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        experiment = load_experiment(args.experiment.removeprefix("file://"))
        result = run_single_stage(experiment, load_settings(), stage, force=args.force)
    except LimaError as error:  # a user-facing problem: message, no traceback, non-zero exit
        print(f"lima-run {stage}: {error}", file=sys.stderr)
        return 2
    state = "cache hit" if result.cache_hit else f"done in {result.duration_s:.1f}s"
    print(f"{stage}: {state}: {result.uri}")
    return 0
