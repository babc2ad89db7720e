"""Conveyor's one dtype vocabulary, and its conversions from and to polars and Arrow.

Feature definitions, model signatures and the registry all spell a column's type
with one of :data:`DTYPES`.  This is the only module that knows how those names map
to polars and Arrow types; it imports neither until a conversion is asked for.

``category`` is a string-valued categorical column (polars ``Categorical`` or
``Enum``, Arrow ``dictionary``); ``datetime`` is microseconds, UTC, when a type is
built from the name (any unit or zone maps back to ``datetime``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.errors import ValidationError

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

INTEGERS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
FLOATS = ("float32", "float64")
#: Every type name Conveyor knows, in one tuple.
DTYPES = ("bool", *INTEGERS, *FLOATS, "string", "category", "date", "datetime")
#: Types a model reads as numbers (booleans are 0/1).
NUMERIC = frozenset(("bool", *INTEGERS, *FLOATS))
#: Types whose values are strings.
STRINGS = frozenset(("string", "category"))

# what older Conveyor versions stored: polars reprs (``str(pl.Float64)`` and friends)
_LEGACY = {
    "Boolean": "bool",
    "Int8": "int8",
    "Int16": "int16",
    "Int32": "int32",
    "Int64": "int64",
    "UInt8": "uint8",
    "UInt16": "uint16",
    "UInt32": "uint32",
    "UInt64": "uint64",
    "Float32": "float32",
    "Float64": "float64",
    "String": "string",
    "Utf8": "string",
    "Categorical": "category",
    "Enum": "category",
    "Date": "date",
    "Datetime": "datetime",
}


def normalize(name: str, *, what: str = "a type") -> str:
    """The vocabulary name for ``name``, which may also be a stored polars repr
    (``"Float64"``, ``"Categorical(ordering='physical')"``, ``"Datetime(time_unit='us',
    time_zone='UTC')"``); ValidationError naming ``what`` otherwise."""
    if name in DTYPES:
        return name
    if isinstance(name, str):
        legacy = _LEGACY.get(name.split("(", 1)[0].strip())
        if legacy is not None:
            return legacy
    raise ValidationError(
        f"{what} has the unknown type {name!r}", hint=f"use one of: {', '.join(DTYPES)}"
    )


def check(name: str, *, what: str = "a type") -> str:
    """``name`` if it is in :data:`DTYPES` (no legacy spelling); ValidationError otherwise."""
    if name not in DTYPES:
        raise ValidationError(
            f"{what} has the unknown type {name!r}", hint=f"use one of: {', '.join(DTYPES)}"
        )
    return name


# -- polars ----------------------------------------------------------------------------


def _polars_classes() -> dict[type, str]:
    import polars as pl

    return {
        pl.Boolean: "bool",
        pl.Int8: "int8",
        pl.Int16: "int16",
        pl.Int32: "int32",
        pl.Int64: "int64",
        pl.UInt8: "uint8",
        pl.UInt16: "uint16",
        pl.UInt32: "uint32",
        pl.UInt64: "uint64",
        pl.Float32: "float32",
        pl.Float64: "float64",
        pl.String: "string",
        pl.Categorical: "category",
        pl.Enum: "category",
        pl.Date: "date",
        pl.Datetime: "datetime",
    }


_FROM_POLARS: dict[type, str] | None = None


def from_polars(dtype: pl.DataType | type) -> str | None:
    """The vocabulary name of a polars type, or None when it has none (Decimal, List...)."""
    global _FROM_POLARS
    if _FROM_POLARS is None:
        _FROM_POLARS = _polars_classes()
    return _FROM_POLARS.get(dtype if isinstance(dtype, type) else type(dtype))


def to_polars(name: str) -> pl.DataType:
    """The polars type of a vocabulary name (``datetime``: microseconds, UTC)."""
    import polars as pl

    return {
        "bool": pl.Boolean(),
        "int8": pl.Int8(),
        "int16": pl.Int16(),
        "int32": pl.Int32(),
        "int64": pl.Int64(),
        "uint8": pl.UInt8(),
        "uint16": pl.UInt16(),
        "uint32": pl.UInt32(),
        "uint64": pl.UInt64(),
        "float32": pl.Float32(),
        "float64": pl.Float64(),
        "string": pl.String(),
        "category": pl.Categorical(),
        "date": pl.Date(),
        "datetime": pl.Datetime("us", "UTC"),
    }[check(name)]


# -- Arrow -----------------------------------------------------------------------------


def to_arrow(name: str) -> pa.DataType:
    """The Arrow type of a vocabulary name (strings are ``large_string``, categories
    ``dictionary<int32, large_string>``, timestamps microseconds UTC)."""
    import pyarrow as pa

    return {
        "bool": pa.bool_(),
        "int8": pa.int8(),
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "uint8": pa.uint8(),
        "uint16": pa.uint16(),
        "uint32": pa.uint32(),
        "uint64": pa.uint64(),
        "float32": pa.float32(),
        "float64": pa.float64(),
        "string": pa.large_string(),
        "category": pa.dictionary(pa.int32(), pa.large_string()),
        "date": pa.date32(),
        "datetime": pa.timestamp("us", "UTC"),
    }[check(name)]


def from_arrow(dtype: pa.DataType) -> str | None:
    """The vocabulary name of an Arrow type, or None when it has none."""
    import pyarrow as pa
    import pyarrow.types as t

    if t.is_dictionary(dtype):
        return "category" if from_arrow(dtype.value_type) == "string" else None
    if (
        t.is_string(dtype)
        or t.is_large_string(dtype)
        or (hasattr(t, "is_string_view") and t.is_string_view(dtype))
    ):
        return "string"
    if t.is_timestamp(dtype):
        return "datetime"
    if t.is_date(dtype):
        return "date"
    if dtype == pa.bool_():
        return "bool"
    if t.is_integer(dtype) or t.is_floating(dtype):
        name = str(dtype)
        return {"float": "float32", "double": "float64", "halffloat": None}.get(name, name)
    return None
