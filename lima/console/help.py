"""`--help` without Python types: `--force-stage NAME`, not `--force-stage <list[str]>`.

Typer prints each parameter's annotation (`<bool>`, `<str>`, `<list[str]>`) in the help's type
column. Users of kubectl or dvc expect a metavar for options that take a value and nothing for
flags; these command and group classes show exactly that.
"""

from __future__ import annotations

from typing import Any

import click
import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


def _plain_type(param: click.Parameter) -> None:
    """Replace the parameter's type column with its metavar (values) or nothing (flags)."""
    if isinstance(param, TyperOption):
        if param.is_flag or param.count:
            label = None
        else:
            label = param.metavar or (param.name or "value").upper()
    elif isinstance(param, TyperArgument):
        label = None  # the argument's name column already says what it is
    else:
        return
    param.display_type_rich = lambda ctx, _label=label: _label  # type: ignore[method-assign]


class PlainCommand(TyperCommand):
    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)  # includes --help, added late by click
        for param in params:
            _plain_type(param)
        return params


class PlainGroup(TyperGroup):
    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)  # includes --help and the completion options
        for param in params:
            _plain_type(param)
        return params


class PlainTyper(typer.Typer):
    """A Typer app whose commands (registered anywhere with `@app.command()`) use PlainCommand."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=PlainGroup, **kwargs)

    def command(self, *args: Any, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or PlainCommand, **kwargs)
