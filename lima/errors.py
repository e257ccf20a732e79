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


class SourceError(LimaError):
    """An input named by the spec is missing or unreadable."""


class StoreError(LimaError):
    """The artifact store failed (after retries) or returned corrupt data."""

    exit_code = 1


class IntegrityError(StoreError):
    """An object's sha256 does not match its manifest."""


class StageError(LimaError):
    """A stage failed for a reason it can explain (bad data, divergence, ...)."""

    exit_code = 1
