"""The docs cannot drift from the CLI: every `lima ...` command they show parses, and every link
stays inside the repository (a user's clone has no `../shared`)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer._click.exceptions import UsageError  # typer vendors its own click

from lima.cli import app
from tests.conftest import REPO

DOCS = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "examples").rglob("*.md")]
)
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)
# A Markdown indented code block: lines indented by 4 spaces (or a tab) after a blank line.
INDENTED = re.compile(r"(?:\A|\n[ \t]*\n)((?:(?: {4}|\t)[^\n]*\n(?:[ \t]*\n)*)+)")
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
COMMAND = re.compile(r"^(?:\$ )?(?:\.venv/bin/)?lima ([^`#|;&]+)")


def commands_in(text: str) -> list[str]:
    """`lima` command lines in fenced and indented code blocks and inline code (comments and
    pipes cut off)."""
    snippets = [line for block in FENCE.findall(text) for line in block.splitlines()]
    unfenced = FENCE.sub("", text)
    snippets += [line for block in INDENTED.findall(unfenced) for line in block.splitlines()]
    snippets += INLINE.findall(unfenced)  # also `lima stage NAME` quoted inside an indented block
    found = []
    for snippet in snippets:
        if any(ch in snippet for ch in "─│►▼┌└"):
            continue  # a diagram, not a command line
        for part in re.split(r"&&|;", snippet):
            match = COMMAND.match(part.strip())
            if match:
                found.append(match.group(1).strip())
    return found


def argv(command: str) -> list[str]:
    """Tokens, with the docs' notation for optional parts (`[--force]`, `A|B`) resolved."""
    tokens = []
    for token in shlex.split(command):
        token = token.strip("[]")
        if not token or token == "...":
            continue
        tokens.append(token.split("|")[0] if token.startswith("-") else token)
    return tokens


def parse(args: list[str]) -> None:
    """What click does before running a command: raises UsageError on a wrong command.

    A bare `lima NAME` in prose names the command (`lima run` does X): it must exist."""
    group = typer.main.get_command(app)
    if args and all(a.startswith("-") for a in args):  # `lima --version`: check, don't run
        known = {o for p in group.get_params(group.make_context("lima", ["x"])) for o in p.opts}
        unknown = [a for a in args if a not in known]
        if unknown:
            raise UsageError(f"no option {unknown[0]}")
        return
    if len(args) == 1 and not args[0].startswith("-"):
        if args[0] not in group.commands:
            raise UsageError(f"no command {args[0]!r}")
        return
    try:
        ctx = group.make_context("lima", list(args))
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return
        name, command, sub_args = group.resolve_command(ctx, rest)
        assert command is not None, f"unknown command {name}"
        command.make_context(name, sub_args, parent=ctx)
    except typer.Exit:
        return  # --help / --version


SHOWN = [(doc, command) for doc in DOCS for command in commands_in(doc.read_text())]


def test_the_docs_show_commands_at_all() -> None:
    """The extraction itself works: the README alone shows most subcommands."""
    readme = {argv(c)[0] for d, c in SHOWN if d.name == "README.md" and argv(c)}
    assert {"validate", "run", "status", "lineage", "report", "init"} <= readme, readme


def test_indented_code_blocks_are_read() -> None:
    """4-space blocks (no fence) are code too: their commands are checked like the others."""
    shown = {(d.relative_to(REPO).as_posix(), c) for d, c in SHOWN}
    assert {
        ("README.md", "run examples/ablation-diversity.yaml"),
        ("README.md", "report diversity"),
        ("docs/architecture.md", "run experiment.yaml"),
        ("docs/sweeps.md", "validate examples/ablation-diversity.yaml"),
        ("docs/sweeps.md", "report diversity"),
    } <= shown
    text = "Prose.\n\n    lima run a.yaml   # a comment\n\n    lima report x\nNot code: lima y\n"
    assert commands_in(text) == ["run a.yaml", "report x"]
    # Not an indented block: a list item's continuation line has no blank line before it.
    assert commands_in("- item\n    lima nothing\n") == []


@pytest.mark.parametrize(
    ("doc", "command"), SHOWN, ids=[f"{d.relative_to(REPO)}: lima {c}" for d, c in SHOWN]
)
def test_every_command_in_the_docs_parses(doc: Path, command: str) -> None:
    try:
        parse(argv(command))
    except UsageError as error:
        pytest.fail(f"{doc.relative_to(REPO)}: `lima {command}`: {error.format_message()}")


def test_the_parser_check_rejects_wrong_commands() -> None:
    """The check above can fail: what docs/training.md used to show before `stage` took FILE."""
    with pytest.raises(UsageError):
        parse(argv("stage train --epochs 3"))
    with pytest.raises(UsageError):
        parse(argv("lineage demo --run"))
    parse(argv("stage train examples/experiment.yaml"))


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_links_stay_inside_the_repository(doc: Path) -> None:
    text = doc.read_text()
    assert "../shared" not in text, f"{doc}: names ../shared, which a clone does not have"
    prose = INLINE.sub("", FENCE.sub("", text))  # `[a-z]([-a-z0-9]*)` in code is no link
    for target in LINK.findall(prose):
        if re.match(r"^(https?|mailto):", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#")[0]).resolve()
        assert REPO in path.parents or path == REPO, f"{doc}: link {target} leaves the repository"
        assert path.exists(), f"{doc}: link {target} points at nothing"
