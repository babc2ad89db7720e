"""Converters shared by the attrs value classes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def to_tuple(values: Iterable[Any]) -> tuple[Any, ...]:
    """``tuple(values)``: a tuple field's converter that accepts any iterable.

    ``converter=tuple`` does the same at run time, but the type checker's attrs
    support cannot solve the generic ``tuple`` constructor and rejects every
    argument; the field's own annotation still states the element type.
    """
    return tuple(values)
