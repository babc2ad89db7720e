"""A batch as the local feature store stores it: checked, typed, split by time.

:func:`conform` checks rows against their view and casts them to its stored types;
:func:`partitioning` and :func:`partitions` cut a batch into the time partitions
its files are written per; :func:`content_fingerprint` tells a repeated batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from conveyor.errors import ConveyorError, ValidationError
from conveyor.features.definitions import INGESTED_AT, FeatureView

if TYPE_CHECKING:
    import polars as pl

#: the columns a scan adds when asked for the stored order of rows
FILE = "_file"
ROW = "_row"

_EPOCH_DAY = date(1970, 1, 1)
#: ``auto`` partitioning: daily files once a day holds this many rows, else monthly
DAY_PARTITION_ROWS = 100_000


def partitioning(v: FeatureView, df: pl.DataFrame, configured: str) -> str:
    """The partition scheme of a batch: ``all`` for a static view, else ``day`` or
    ``month`` (``auto``: by the batch's rows per day over its span)."""
    if v.static:
        return "all"
    if configured != "auto":
        return configured
    if not df.height:
        return "month"
    assert v.timestamp_field is not None  # static views returned above
    times = df[v.timestamp_field]
    span = cast("datetime", times.max()) - cast("datetime", times.min())
    days = max(1.0, span.total_seconds() / 86_400)
    return "day" if df.height / days >= DAY_PARTITION_ROWS else "month"


def partitions(v: FeatureView, df: pl.DataFrame, scheme: str) -> Iterable[tuple[str, pl.DataFrame]]:
    """``(label, rows)`` per partition, in time order; one partition's copy at a time."""
    import polars as pl

    if scheme == "all" or not df.height:
        if df.height:
            yield "static", df
        return
    # an integer per row (4 bytes), not a label string (~16): ingestion's peak memory
    ts = pl.col(v.timestamp_field)  # type: ignore[arg-type]
    if scheme == "day":
        number = ts.dt.date().cast(pl.Int32)  # days since the epoch, UTC
    else:
        number = ts.dt.year().cast(pl.Int32) * 100 + ts.dt.month().cast(pl.Int32)
    numbers = df.select(number.alias("n")).to_series()
    for value in numbers.unique().sort():
        if scheme == "day":
            label = (_EPOCH_DAY + timedelta(days=value)).isoformat()
        else:
            label = f"{value // 100:04d}-{value % 100:02d}"
        yield label, df.filter(numbers == value)


def content_fingerprint(rows: pl.DataFrame) -> str:
    """A fingerprint of a table's content (columns, types, rows in order)."""
    import hashlib

    digest = hashlib.sha256(repr(list(rows.schema.items())).encode())
    digest.update(rows.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()


def empty_frame(v: FeatureView, *, order: bool = False) -> pl.DataFrame:
    """An empty frame with a view's stored schema."""
    import polars as pl

    from conveyor.features.pit import polars_dtype

    schema = {c: polars_dtype(t) for c, t in v.schema().items()}
    schema[INGESTED_AT] = pl.Datetime("us", "UTC")
    if order:
        schema[ROW] = pl.Int64()
        schema[FILE] = pl.String()
    return pl.DataFrame(schema=schema)


def conform(v: FeatureView, df: pl.DataFrame) -> pl.DataFrame:
    """``df`` checked against the view's definition and cast to its stored types.

    Refuses missing or unknown columns, values that do not fit the declared type,
    and null keys or event times.  Timestamps are stored as UTC microseconds.
    """
    import polars as pl

    from conveyor.features.pit import polars_dtype, utc_timestamp

    schema = v.schema()
    missing = [c for c in schema if c not in df.columns]
    extra = [c for c in df.columns if c not in schema]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks {', '.join(map(repr, missing))}")
        if extra:
            parts.append(f"has unknown column(s) {', '.join(map(repr, extra))}")
        raise ValidationError(
            f"the batch for feature view {v.name!r} {' and '.join(parts)}",
            hint=f"the view's columns are: {', '.join(schema)}",
        )
    exprs = []
    for column, dtype in schema.items():
        current = df.schema[column]
        target = polars_dtype(dtype)
        expr = pl.col(column)
        if dtype == "datetime":
            if not isinstance(current, pl.Datetime | pl.Date):
                raise _type_error(v, column, current, dtype)
            exprs.append(utc_timestamp(expr, current).alias(column))
            continue
        ok = (
            current == target
            or current == pl.Null
            or (target.is_integer() and current.is_integer())
            or (target.is_float() and (current.is_float() or current.is_integer()))
        )
        if not ok:
            raise _type_error(v, column, current, dtype)
        exprs.append(expr.cast(target, strict=True).alias(column))
    try:
        out = df.select(exprs)
    except pl.exceptions.InvalidOperationError as exc:
        raise ValidationError(
            f"the batch for feature view {v.name!r} has values that do "
            f"not fit the declared types: {exc}".splitlines()[0],
            hint="fix the values or the feature's dtype",
        ) from None
    for required in (*v.join_keys, v.timestamp_field, v.created_timestamp_field):
        if required is not None and out[required].null_count():
            raise ValidationError(
                f"the batch for feature view {v.name!r} has {out[required].null_count()} "
                f"null value(s) in {required!r}",
                hint="keys and timestamps must be set on every row",
            )
    return out


def _type_error(v: FeatureView, column: str, current: Any, dtype: str) -> ConveyorError:
    return ValidationError(
        f"column {column!r} of the batch for feature view {v.name!r} is {current}, "
        f"but the view declares {dtype}",
        hint="cast the column, or change the definition and run `conveyor features apply`",
    )
