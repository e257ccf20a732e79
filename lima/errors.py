"""Errors a user can cause and fix; the CLI prints them without a traceback."""

from __future__ import annotations


class LimaError(Exception):
    """Base of every error meant for the user (the CLI shows the message, exit code 2)."""

    exit_code = 2


class SpecError(LimaError):
    """An Experiment document is invalid; `problems` lists every `path: rule (got value)`."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n  " + "\n  ".join(problems))


class SettingsError(LimaError):
    """A `LIMA_*` setting is invalid; the message names the variable, never its value."""


class SourceError(LimaError):
    """An input named by the spec is missing or unreadable."""


class StoreError(LimaError):
    """The artifact store failed (after retries), refused a key, or returned corrupt data.

    Exit code 2 like every environment problem the user fixes (an unreachable or misconfigured
    store); a stage that fails because of it still makes `lima run` exit 1.
    """


class IntegrityError(StoreError):
    """Stored data is corrupt: an object's sha256 or size does not match its manifest, or a
    manifest, run record or cache entry is truncated or unreadable (the message names it)."""


class LeaseTimeoutError(StoreError):
    """Another run held a stage key's lease longer than we were willing to wait."""


class StageError(LimaError):
    """A stage failed for a reason it can explain (bad data, divergence, ...)."""

    exit_code = 1
