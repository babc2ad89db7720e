"""Validate and encode a few rows without polars: the serving path for small requests.

Building a polars table and running :class:`~conveyor.models.inference.Predictor`'s
expressions costs about a millisecond whatever the row count; for one row that is
most of a request.  :class:`SmallBatch` does the same work on plain columns
(``{name: list or 1-d numpy array}``) in Python, with everything per feature
precomputed once per signature.

It applies exactly the polars path's rules and raises the same errors (both build
them with the same functions, and a property test feeds both the same input).  An
input whose polars type it cannot tell for certain -- mixed value types, nested
values, integers beyond int64, float16, no rows -- is not guessed at: ``matrix``
returns ``None`` and the caller takes the polars path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from conveyor.models.dtypes import FLOATS, NUMERIC, STRINGS
from conveyor.models.inference import (
    infinite_values,
    input_error,
    missing_column,
    missing_values,
    wrong_type,
)

if TYPE_CHECKING:
    import numpy as np

    from conveyor.models.signature import Signature

#: Requests of at most this many rows take the small-batch path when they can.
SMALL_ROWS = 64

#: Vocabulary name -> the text polars prints for that column type (in error messages).
_POLARS_TEXT = {
    "bool": "Boolean",
    "int8": "Int8",
    "int16": "Int16",
    "int32": "Int32",
    "int64": "Int64",
    "uint8": "UInt8",
    "uint16": "UInt16",
    "uint32": "UInt32",
    "uint64": "UInt64",
    "float32": "Float32",
    "float64": "Float64",
    "string": "String",
}
#: Python value type -> the polars type a list of such values becomes.
_PYTHON = {bool: "bool", int: "int64", float: "float64", str: "string"}
_NULL = "null"  # every value None: polars' Null type
_INT64 = (-(1 << 63), 1 << 63)
_NAN = float("nan")


def _observed(values: Any) -> tuple[str, list[Any]] | None:
    """``(vocabulary type polars would give values, values as a list)``, or None when
    that is not certain."""
    if isinstance(values, list):
        kind: type | None = None
        for v in values:
            if v is None:
                continue
            t = type(v)
            if kind is None:
                kind = t
            elif t is not kind:
                return None  # polars' inference depends on the order: let it decide
        if kind is None:
            return _NULL, values
        name = _PYTHON.get(kind)
        if name is None:
            return None
        if kind is int and not all(_INT64[0] <= v < _INT64[1] for v in values if v is not None):
            return None
        return name, values
    dtype = getattr(values, "dtype", None)
    if (
        dtype is None
        or getattr(values, "ndim", 0) != 1
        or dtype.name not in _POLARS_TEXT
        or dtype.name == "string"
    ):
        return None
    return dtype.name, values.tolist()


class _Feature:
    """One feature, compiled: what it accepts and how it is encoded."""

    __slots__ = ("accepts", "codes", "name", "nullable", "spec")

    def __init__(self, spec: Any) -> None:
        self.spec, self.name, self.nullable = spec, spec.name, spec.nullable
        if spec.categories is None:
            self.accepts = frozenset(NUMERIC)
            self.codes: dict[str, float] | None = None
        else:
            self.accepts = frozenset(STRINGS if spec.is_string else NUMERIC | STRINGS)
            self.codes = {k: float(v) for k, v in spec.category_map().items()}


class SmallBatch:
    """A signature compiled for a few rows of plain columns (see the module doc)."""

    def __init__(self, signature: Signature) -> None:
        self.signature = signature
        self._features = [_Feature(f) for f in signature.features]
        self._names = [f.name for f in self._features]
        #: every feature numeric without categories: a row of floats is its own encoding
        self._plain = all(f.codes is None for f in self._features)

    def _float_row(self, columns: Mapping[str, Any]) -> np.ndarray | None:
        """The matrix of the commonest request, one row of finite floats for a plain
        signature, or None: anything else takes the general checks below."""
        import numpy as np

        for values in columns.values():  # extra columns too, as in matrix()
            if type(values) is not list or len(values) != 1 or type(values[0]) is not float:
                return None
        try:
            row = np.array([columns[n][0] for n in self._names], dtype=np.float64)
        except KeyError:
            return None
        return row.reshape(1, -1) if np.isfinite(row).all() else None

    def matrix(self, columns: Mapping[str, Any]) -> np.ndarray | None:
        """The float64 matrix in booster order, :class:`PredictionInputError` naming
        every field that does not fit, or ``None``: take the polars path."""
        import numpy as np

        if self._plain:
            fast = self._float_row(columns)
            if fast is not None:
                return fast
        typed: dict[str, tuple[str, list[Any]]] = {}
        height = -1
        for name, values in columns.items():  # extra columns too: polars must type them
            observed = _observed(values)
            if observed is None or (height >= 0 and len(observed[1]) != height):
                return None
            typed[name] = observed
            height = len(observed[1])
        if height <= 0:
            return None
        # the polars path reports column and type problems first, then value counts
        problems: list[Any] = []
        counted: list[tuple[int, Any]] = []  # (feature position, finding), in order
        floats: list[tuple[int, int, _Feature]] = []  # (column, position, feature)
        cols: list[list[float]] = []
        for position, feature in enumerate(self._features):
            entry = typed.get(feature.name)
            if entry is None:
                problems.append(missing_column(feature.name))
                continue
            seen, values = entry
            if seen == _NULL:
                if not feature.nullable:
                    problems.append(missing_values(feature.name, height))
                cols.append([_NAN] * height)
                continue
            if seen not in feature.accepts:
                problems.append(wrong_type(feature.spec, _POLARS_TEXT[seen]))
                continue
            codes = feature.codes
            if codes is None:
                column = [_NAN if v is None else v for v in values] if None in values else values
            elif seen in FLOATS:
                return None  # floats as category strings: polars' formatting decides
            elif seen == "string":
                column = [codes.get(v, _NAN) for v in values]  # None -> NaN too
            elif seen == "bool":
                column = [
                    _NAN if v is None else codes.get("true" if v else "false", _NAN) for v in values
                ]
            else:
                column = [_NAN if v is None else codes.get(str(v), _NAN) for v in values]
            if seen in FLOATS:
                floats.append((len(cols), position, feature))  # NaN/inf checked at once
            elif not feature.nullable:
                missing = values.count(None)
                if missing:
                    counted.append((position, missing_values(feature.name, missing)))
            cols.append(column)
        # (features, rows) in C order is (rows, features) in Fortran order: no copy, and
        # LightGBM reads column-major input as it is
        matrix = np.array(cols, dtype=np.float64).T
        if floats and not np.isfinite(matrix).all():
            # NaN (a None became NaN too) and +/-inf, counted per float column
            for index, position, feature in floats:
                encoded = matrix[:, index]
                missing = int(np.isnan(encoded).sum())
                infinite = int(np.isinf(encoded).sum())
                if missing and not feature.nullable:
                    counted.append((position, missing_values(feature.name, missing)))
                if infinite:
                    counted.append((position, infinite_values(feature.name, infinite)))
            counted.sort(key=lambda item: item[0])  # stable: a column's two stay in order
        if problems or counted:
            raise input_error(problems + [finding for _, finding in counted])
        return matrix
