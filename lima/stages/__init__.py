"""The stages' run functions, one module per stage; the graph that ties them is lima.dag.

Each module's `run(ctx)` reads its inputs' artifacts, writes files into `ctx.output_dir` and
returns its typed result (lima.results). Modules are imported only when their stage runs, so
nothing here is imported by `lima validate`, `lima plan` or the operator.
"""

from lima.dag import Stage
from lima.stages.base import ProgressSink, StageContext

__all__ = ["ProgressSink", "Stage", "StageContext"]
