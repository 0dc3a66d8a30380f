"""How the plain-data twin of the contract (plain.py) checks what pydantic checks in Python.

The twin is generated from the pydantic models: their fields, types and constraints. What a
generator cannot read off a model is a validator written in Python; each one the twin
takes has its equivalent declared here, beside it in the contract's own modules:

- a type with a Python validator carries a `Plain` in its `Annotated` metadata (or, for a
  class such as `When`, is given one with `plain_type`), saying which values the twin
  accepts, always a subset of what the validator accepts *unchanged*;
- a model validator has its equivalent registered with `same_check_as`: a predicate over the
  plain event (a msgspec Struct with the model's field names).

A type or model with a Python validator and no equivalent here is not in the twin: events
that use it take the pydantic path. The twin only ever accepts: whatever it refuses, or
cannot judge, pydantic judges and words the errors, so each equivalent need only be sound
(it accepts nothing pydantic would refuse or rewrite), not complete.

No msgspec here: the contract's modules import this one, and the twin imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Plain:
    """The twin's form of a type that pydantic checks in Python.

    - `base`: the plain type the value has on the wire, in pydantic's vocabulary (say
      `Annotated[str, StringConstraints(...)]`), when it is not the annotated type itself;
    - `values`: the value must be exactly one of these (the twin makes them a `Literal`);
    - `check`: a predicate on the decoded value, run after the type's constraints.
    """

    base: Any = None
    values: Callable[[], Iterable[str]] | None = None
    check: Callable[[Any], bool] | None = None


_TYPES: dict[type, Plain] = {}
_MODEL_CHECKS: dict[Callable[..., Any], Callable[[Any], bool]] = {}


def plain_type(cls: type, plain: Plain) -> None:
    """Declare the twin's form of a class with its own pydantic schema (like `When`)."""
    _TYPES[cls] = plain


def plain_of(cls: type) -> Plain | None:
    return _TYPES.get(cls)


def same_check_as(
    validator: Callable[..., Any],
) -> Callable[[Callable[[Any], bool]], Callable[[Any], bool]]:
    """Register the decorated predicate as the twin's equivalent of a model's `validator`
    (a `field_validator` or `model_validator` method, as the class has it): given the plain
    event, True when the validator would let it through."""

    def register(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
        _MODEL_CHECKS[_function(validator)] = check
        return check

    return register


def check_of(validator: Callable[..., Any]) -> Callable[[Any], bool] | None:
    return _MODEL_CHECKS.get(_function(validator))


def _function(method: Callable[..., Any]) -> Callable[..., Any]:
    """The function under a bound (class)method: the same for a class and its subclasses."""
    return getattr(method, "__func__", method)
