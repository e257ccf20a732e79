"""Shared building blocks of the Experiment spec models."""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

API_GROUP = "lima-run.io"
API_VERSION = "v1alpha1"
KIND = "Experiment"


def _numeric_not_bool(annotation: Any) -> bool:
    """The annotation takes numbers and not booleans (`int`, `float | None`, `list[int]`)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        members = typing.get_args(annotation)
        if origin is typing.Annotated:
            members = members[:1]
        if bool in members:
            return False
        return any(_numeric_not_bool(member) for member in members)
    return annotation in (int, float)


@functools.cache
def _refuses_bool(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields.get(name)
    return field is not None and _numeric_not_bool(field.annotation)


class SpecModel(BaseModel):
    """Base for every spec model.

    `extra="forbid"` makes a typo an error instead of a silently ignored field; field docstrings
    become descriptions in the JSON schema (and so in the CRD and the generated reference docs).
    `allow_inf_nan=False`: `.inf`/`.nan` (valid YAML floats) pass every `gt=0` bound, so they
    are refused everywhere.
    """

    model_config = ConfigDict(
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
        populate_by_name=True,
        allow_inf_nan=False,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """`workers: true` is a slip, not 1: pydantic's lax mode would take a YAML boolean as
        the number 1 (or 0), so a number field refuses booleans."""
        if not isinstance(value, bool | list):  # the common case, decided without looking up
            return value
        if not _refuses_bool(cls, info.field_name or ""):
            return value
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, bool) for item in items):
            raise ValueError("must be a number, not true/false")
        return value
