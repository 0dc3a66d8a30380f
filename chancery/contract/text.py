"""Bounded text types: every string on the wire has a maximum length and a shape.

Single-line text has no control characters and no surrounding whitespace, so what a
client sends is what every reader gets back (nothing is silently stripped).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

_EDGE = r"[^\s\x00-\x1f\x7f]"
_INNER = r"[^\x00-\x1f\x7f]"
_LINE = rf"^{_EDGE}({_INNER}*{_EDGE})?$"


def _line(max_length: int) -> StringConstraints:
    return StringConstraints(min_length=1, max_length=max_length, pattern=_LINE)


Label = Annotated[str, _line(80)]
"""A short label: a role, a characterisation, a partnership's name."""

Name = Annotated[str, _line(120)]
"""A person's or a place's name."""

Text = Annotated[str, _line(500)]
"""A sentence: a purpose, a reason, an issue."""

Quote = Annotated[str, _line(1000)]
"""Words as reported."""

SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
Slug = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=SLUG_PATTERN)]
"""A lowercase identifier made of words joined by hyphens: `li-hui`, `china-peace-plan`."""

HttpUrl = Annotated[
    str,
    StringConstraints(min_length=10, max_length=2048, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$"),
]
"""An absolute http(s) URL, kept exactly as given (no normalisation)."""
