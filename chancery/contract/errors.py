"""Validation errors that name the field they are about.

A check that spans fields (a leg against its trip, `occurred` against `time`) runs in a
model validator, where a plain `ValueError` would be reported against the whole model.
Raising a `ValidationError` built here instead keeps its `loc`: pydantic prefixes it with
the location of the model being validated, so a caller sees `("data", "legs", 2, "planned")`.
"""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

Loc = tuple[str | int, ...]


def field_error(
    loc: Loc, error_type: str, template: str, input_value: object, /, **context: object
) -> ValidationError:
    """One error at `loc`. `template` may use `{name}` placeholders filled from `context`."""
    return ValidationError.from_exception_data(
        "chancery",
        [
            InitErrorDetails(
                type=PydanticCustomError(error_type, template, context or None),
                loc=loc,
                input=input_value,
            )
        ],
    )
