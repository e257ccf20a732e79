"""Object keys that stay where they belong: inside the store root (local) or the bucket (S3).

Every key the store builds is joined from segments checked here, so a spec prefix such as
`/etc` or `../other-bucket`, an experiment name such as `..`, or a stage key read back from a
tampered run record can never address an object outside `<root or bucket>/<prefix>/`.
"""

from __future__ import annotations

from lima.errors import StoreError
from lima.spec.resources import prefix_problem, safe_segment

__all__ = ["check_prefix", "check_segment", "join_key", "prefix_problem", "safe_segment"]


def check_prefix(prefix: str) -> str:
    problem = prefix_problem(prefix)
    if problem is not None:
        raise StoreError(f"storage prefix {prefix!r} {problem}")
    return prefix.rstrip("/")


def check_segment(part: str, what: str) -> str:
    """A single key segment (experiment name, stage, key, run id), or a StoreError naming it."""
    if not isinstance(part, str) or not safe_segment(part):
        raise StoreError(
            f"{what} {str(part)[:80]!r} is not a safe name "
            "(1-128 of A-Z a-z 0-9 . _ -, not '.' or '..')"
        )
    return part


def join_key(*parts: str) -> str:
    """`a/b/c` from prefix-or-segment parts, skipping empty ones."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))
