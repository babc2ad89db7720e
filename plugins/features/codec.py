"""How the ``sqlite`` online store keeps values: SQLite types, and conversions both ways.

Timestamps are integer microseconds since the epoch (UTC), dates are days, booleans
0/1, and a float NaN is the text ``'NaN'`` (SQLite would turn a NaN REAL into NULL).
:class:`RowPlan` turns stored rows into the Python values ``OnlineStore.read_rows``
returns, without Arrow: serving looks one key up per request, and a one-row Arrow
table costs more than the SQLite query it holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from attrs import frozen

from conveyor.features.pit import arrow_type

if TYPE_CHECKING:
    import pyarrow as pa

    from conveyor.features.definitions import FeatureView

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: what read values are stamped with: the zone Arrow gives a UTC timestamp, so both agree
_EPOCH_READ = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
_EPOCH_DAY = date(1970, 1, 1)
_DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)
_SQL_TYPES = {
    "bool": "INTEGER",
    "string": "TEXT",
    "float32": "REAL",
    "float64": "REAL",
    "date": "INTEGER",
    "datetime": "INTEGER",
}
_FLOATS = ("float32", "float64")


def micros(value: datetime | None) -> int | None:
    """A datetime as integer microseconds since the epoch (UTC); naive means UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


def from_micros(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def sql_type(dtype: str) -> str:
    return _SQL_TYPES.get(dtype, "INTEGER")


def storage_column(values: pa.ChunkedArray | pa.Array, dtype: str) -> list[Any]:
    """Arrow values as the Python values SQLite stores (timestamps as microseconds)."""
    import pyarrow as pa

    if dtype == "datetime":
        values = values.cast(pa.timestamp("us", "UTC")).cast(pa.int64())
    elif dtype == "date":
        values = values.cast(pa.date32()).cast(pa.int32())
    elif dtype in _FLOATS:
        import pyarrow.compute as pc

        if pc.any(pc.is_nan(values)).as_py():
            # SQLite turns a NaN REAL into NULL; the text 'NaN' keeps it distinct
            return ["NaN" if v != v else v for v in values.to_pylist()]
    return values.to_pylist()


def arrow_column(values: list[Any], dtype: str) -> pa.Array:
    import pyarrow as pa

    if dtype == "datetime":
        return pa.array(values, pa.int64()).cast(pa.timestamp("us", "UTC"))
    if dtype == "date":
        return pa.array(values, pa.int32()).cast(pa.date32())
    if dtype == "bool":
        return pa.array([None if v is None else bool(v) for v in values], pa.bool_())
    try:
        return pa.array(values, arrow_type(dtype))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        if dtype not in _FLOATS:
            raise
        return pa.array([float(v) if isinstance(v, str) else v for v in values], arrow_type(dtype))


def _day(value: int) -> date:
    return _EPOCH_DAY + value * _DAY


def _stored_key(value: Any, dtype: str) -> Any:
    """A join-key value as SQLite stores it (what ``storage_column`` makes of it)."""
    if value is None:
        return None
    if dtype == "datetime" and isinstance(value, datetime):
        return micros(value)
    if dtype == "date" and isinstance(value, date):
        if isinstance(value, datetime):
            value = value.date()
        return (value - _EPOCH_DAY).days
    return value


#: stored value -> the Python value ``read`` gives, for the types that differ
_FROM_STORED: dict[str, Callable[[Any], Any]] = {
    "datetime": lambda v: _EPOCH_READ + timedelta(microseconds=v),
    "date": _day,
    "bool": bool,
}


@frozen
class RowPlan:
    """What ``read_rows`` needs to know about one (view, features), worked out once.

    Attributes:
        view: the view (plans are cached by its identity).
        features: the features read, in order.
        join_keys: the view's join keys.
        stored_key: a requested key tuple as SQLite stores it (``None``: as given).
        fix: ``(position, convert)`` of the stored values that are not already what
            ``read`` returns (dates, booleans, datetimes), positions in ``(_event_ts,
            *features)``.
        floats: positions of float features (a stored ``'NaN'`` becomes a NaN).
        empty: the values of an unknown key.
    """

    view: FeatureView
    features: tuple[str, ...]
    join_keys: tuple[str, ...]
    stored_key: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None
    fix: tuple[tuple[int, Callable[[Any], Any]], ...]
    floats: tuple[int, ...]
    empty: tuple[None, ...]

    @classmethod
    def of(cls, view: FeatureView, features: Sequence[str] | None) -> RowPlan:
        wanted = view.feature_names if features is None else tuple(features)
        for name in wanted:
            view.feature(name)  # NotFoundError names the view's features
        types = {f.name: f.dtype for f in view.features}
        key_types = view.key_types
        dtypes = [types[n] for n in wanted]
        fix = [(0, _FROM_STORED["datetime"])]
        fix += [(i + 1, _FROM_STORED[t]) for i, t in enumerate(dtypes) if t in _FROM_STORED]
        stored_key = None
        if any(t in ("datetime", "date") for t in key_types.values()):
            kinds = tuple(key_types.values())

            def stored_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
                return tuple(_stored_key(v, t) for v, t in zip(key, kinds, strict=True))

        return cls(
            view=view,
            features=wanted,
            join_keys=tuple(key_types),
            stored_key=stored_key,
            fix=tuple(fix),
            floats=tuple(i + 1 for i, t in enumerate(dtypes) if t in _FLOATS),
            empty=(None,) * (len(wanted) + 1),
        )

    def row(self, key: tuple[Any, ...], stored: Sequence[Any] | None) -> tuple[Any, ...]:
        """``(*key, _event_ts, *features)`` from the stored ``(_event_ts, *features)``."""
        if stored is None:
            return key + self.empty
        values = list(stored)
        for i, convert in self.fix:
            if values[i] is not None:
                values[i] = convert(values[i])
        if "NaN" in values:  # rare: only then is every float column looked at
            for i in self.floats:
                if isinstance(values[i], str):
                    values[i] = math.nan
        return (*key, *values)
