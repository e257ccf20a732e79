"""Shared building blocks of the Experiment spec models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

API_GROUP = "lima-run.io"
API_VERSION = "v1alpha1"
KIND = "Experiment"


class SpecModel(BaseModel):
    """Base for every spec model.

    `extra="forbid"` makes a typo an error instead of a silently ignored field; field docstrings
    become descriptions in the JSON schema (and so in the CRD and the generated reference docs).
    """

    model_config = ConfigDict(
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
        populate_by_name=True,
    )
