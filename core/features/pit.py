"""The point-in-time join engine, on polars.

The rule, for one entity row with keys ``k`` and timestamp ``t`` and one view:

* a view row qualifies when its keys equal ``k``, its event time ``e`` satisfies
  ``e <= t`` (inclusive) and, when the view has a TTL, ``t - e <= ttl`` (inclusive);
* in "as known at" mode (``as_of``) a row also needs ``created <= as_of``, where
  ``created`` is the view's created-timestamp column if it declares one, else the
  time the store ingested the row;
* among qualifying rows the greatest ``e`` wins; among equal ``e`` the greatest
  created time wins (when the view has one); among those the row that comes last in
  the view's data (for the bundled store: ingested last, and within one batch the
  later row) wins;
* every entity row is kept, in its original order; where no row qualifies, the
  view's features are null.  Entity rows with a null key or timestamp match nothing.

How: for each view, the view's (keys, event time, tie-break) columns and the entity
rows are stacked and sorted once by (keys, time, source, created, row index), with
view rows before entity rows at equal times (so equality matches); with one integer
key and no created column, by one packed (key, time) integer instead (a stable sort,
so ties keep the row order).  A forward fill then gives every entity row the index
of the last view row before it; a group id and the filled event time check that it
has the same keys and lies within the TTL.  Only then are the feature columns read:
the scan streams through a filter that keeps the matched rows, which one gather puts
in entity order, so the wide columns are never sorted, joined or held whole.

The result is a ``LazyFrame`` whose work all happens when it is collected (a
deferred frame): the entity rows are read once, and each view's narrow key scan and
wide feature scan run as queries of their own (in one plan polars would cache the
view's whole scan, every feature column, for both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from attrs import field, frozen

from conveyor.convert import to_tuple
from conveyor.errors import ValidationError
from conveyor.features.definitions import INGESTED_AT, FeatureView
from conveyor.models.dtypes import to_arrow as arrow_type  # noqa: F401 - the stores use it
from conveyor.models.dtypes import to_polars as polars_dtype

if TYPE_CHECKING:
    import polars as pl

_ROW = "__row"
_IDX = "__i"
_TS = "__ts"
_SRC = "__src"
_CREATED = "__c"
_GROUP = "__g"
# key types whose values all fit an Int64, so (key, time) can be packed into one integer
_PACKABLE = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"})


@frozen(kw_only=True)
class ViewQuery:
    """One view's part of a historical query.

    Attributes:
        view: the view's definition.
        data: the view's rows (its keys, timestamp column(s) and features).
        features: the features to return, in order.
        names: the output column of each feature (default: the feature's name).
        known_at: the columns ``as_of`` compares against (default: the view's
            created-timestamp column and ``_ingested_at`` where ``data`` has them).
    """

    view: FeatureView
    data: pl.LazyFrame = field(eq=False)
    features: tuple[str, ...] = field(converter=to_tuple)
    names: tuple[str, ...] = field(default=(), converter=to_tuple)
    known_at: tuple[str, ...] | None = field(
        default=None, converter=lambda v: None if v is None else tuple(v)
    )

    def output_names(self) -> tuple[str, ...]:
        return self.names or self.features


def utc_timestamp(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """``expr`` as ``Datetime("us", "UTC")``; naive datetimes are taken as UTC."""
    import polars as pl

    if isinstance(dtype, pl.Date):
        return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if not isinstance(dtype, pl.Datetime):
        name = expr.meta.output_name(raise_if_undetermined=False) or "a timestamp column"
        raise ValidationError(
            f"{name!r} must be a date or datetime column, not {dtype}",
            hint="convert it first, e.g. with str.to_datetime()",
        )
    expr = expr.cast(pl.Datetime("us", dtype.time_zone))
    if dtype.time_zone is None:
        return expr.dt.replace_time_zone("UTC")
    return expr.dt.convert_time_zone("UTC")


def to_utc(value: datetime) -> datetime:
    """A datetime in UTC (naive values are taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def point_in_time_join(
    entities: pl.LazyFrame | pl.DataFrame,
    queries: Sequence[ViewQuery],
    *,
    timestamp: str = "event_timestamp",
    as_of: datetime | None = None,
) -> pl.LazyFrame:
    """Each entity row with the point-in-time-correct features of every query.

    Args:
        entities: the entity rows: every queried view's join keys plus ``timestamp``.
        queries: the views and features to fetch.
        timestamp: the entity frame's timestamp column.
        as_of: "as known at": ignore view rows created after this instant.

    Returns:
        A lazy frame: the entity columns in their order, then each query's feature
        columns; one row per entity row, in the entity frame's order.
    """
    import polars as pl

    lf = entities.lazy()
    schema = lf.collect_schema()
    if timestamp not in schema:
        raise ValidationError(
            f"the entity frame has no timestamp column {timestamp!r} "
            f"(columns: {', '.join(schema.names())})",
            hint="add the column, or pass timestamp=<the column's name>",
        )
    taken = set(schema.names())
    for q in queries:
        for name in q.output_names():
            if name in taken:
                raise ValidationError(
                    f"the feature column {name!r} (view {q.view.name!r}) clashes with "
                    "another column of the result",
                    hint="request full names (full_names=True) or rename the column",
                )
            taken.add(name)
    entity_ts = utc_timestamp(pl.col(timestamp), schema[timestamp])
    picks = [_pick(schema, entity_ts, q, as_of) for q in queries]  # validates now

    def run() -> pl.DataFrame:
        # The entity rows are read once; each view's index is computed in queries of
        # its own: one plan with a narrow key scan and a wide feature scan of the same
        # data would make polars cache the whole scan (every feature column).
        frame = lf.collect()
        base = frame.lazy().with_row_index(_ROW)
        return pl.concat([frame, *[pick(base) for pick, _ in picks]], how="horizontal")

    out = dict(schema)
    for _, columns in picks:
        out.update(columns)
    return pl.defer(run, schema=out)


def _pick(
    schema: pl.Schema, entity_ts: pl.Expr, q: ViewQuery, as_of: datetime | None
) -> tuple[Callable[[pl.LazyFrame], pl.DataFrame], dict[str, pl.DataType]]:
    """A function from the numbered entity rows to one view's features, and their types."""
    import polars as pl

    view = q.view
    keys = list(view.join_keys)
    missing = [k for k in keys if k not in schema]
    if missing:
        raise ValidationError(
            f"the entity frame lacks the join key(s) {', '.join(map(repr, missing))} "
            f"of feature view {view.name!r} (its columns: {', '.join(schema.names())})",
            hint=f"add {', '.join(map(repr, missing))} to the entity rows (the label data), "
            "or rename the view's entity join key to the column that holds it",
        )
    for feature in q.features:
        view.feature(feature)  # NotFoundError names the view's features
    data_schema = q.data.collect_schema()
    need = [*keys, *([] if view.static else [view.timestamp_field]), *q.features]
    if view.created_timestamp_field:
        need.append(view.created_timestamp_field)
    absent = [c for c in need if c not in data_schema]
    if absent:
        raise ValidationError(
            f"the data of feature view {view.name!r} lacks the column(s) "
            f"{', '.join(map(repr, absent))}",
            hint="ingest data that matches the view's definition",
        )
    key_types = {k: polars_dtype(t) for k, t in view.key_types.items()}
    if view.static:
        return _pick_static(q, key_types, data_schema, as_of)
    assert view.timestamp_field is not None  # only a static view has none
    narrow = [*keys, view.timestamp_field]
    if view.created_timestamp_field:
        narrow.append(view.created_timestamp_field)

    event = utc_timestamp(pl.col(view.timestamp_field), data_schema[view.timestamp_field])
    created = (
        utc_timestamp(
            pl.col(view.created_timestamp_field), data_schema[view.created_timestamp_field]
        )
        if view.created_timestamp_field
        else None
    )
    valid = pl.all_horizontal(
        [pl.col(k).is_not_null() for k in keys] + [pl.col(view.timestamp_field).is_not_null()]
    )
    if as_of is not None:
        columns = (
            q.known_at
            if q.known_at is not None
            else tuple(
                c for c in (view.created_timestamp_field, INGESTED_AT) if c and c in data_schema
            )
        )
        if not columns:
            raise ValidationError(
                f"feature view {view.name!r} has no created timestamp, so 'as known at' "
                "cannot be answered",
                hint="declare created_timestamp_field on the view",
            )
        cutoff = pl.lit(to_utc(as_of)).cast(pl.Datetime("us", "UTC"))
        for column in columns:
            narrow.append(column)
            valid = valid & (utc_timestamp(pl.col(column), data_schema[column]) <= cutoff)
    rows = q.data.select(list(dict.fromkeys(narrow))).with_row_index(_IDX)
    # Entity rows carry the top bit in the index column, so that, after the time,
    # they sort after every view row (equal times match).  Without a created column
    # that one column orders everything: a 3-key sort instead of a 5-key one.
    entity_bit = pl.lit(1 << 63, pl.UInt64)
    view_cols = [*[pl.col(k).cast(key_types[k]) for k in keys], event.alias(_TS)]
    entity_cols = [*[pl.col(k).cast(key_types[k]) for k in keys], entity_ts.alias(_TS)]
    order = [*keys, _TS]
    if created is not None:
        view_cols += [pl.lit(0, pl.UInt8).alias(_SRC), created.alias(_CREATED)]
        entity_cols += [
            pl.lit(1, pl.UInt8).alias(_SRC),
            pl.lit(None, pl.Datetime("us", "UTC")).alias(_CREATED),
        ]
        order += [_SRC, _CREATED]
    view_side = rows.filter(valid).select(*view_cols, pl.col(_IDX).cast(pl.UInt64))
    new_group = pl.any_horizontal([pl.col(k).ne_missing(pl.col(k).shift(1)) for k in keys])
    is_view = pl.col(_IDX) < entity_bit
    ok = (pl.col("__fg") == pl.col(_GROUP)) & pl.col(_TS).is_not_null()
    for k in keys:
        ok = ok & pl.col(k).is_not_null()
    if view.ttl is not None:
        ok = ok & ((pl.col(_TS) - pl.col("__ft")) <= pl.lit(view.ttl))
    packable = created is None and len(keys) == 1 and view.key_types[keys[0]] in _PACKABLE

    def stacked(base: pl.LazyFrame) -> pl.LazyFrame:
        entity_side = base.select(
            *entity_cols, (pl.col(_ROW).cast(pl.UInt64) | entity_bit).alias(_IDX)
        )
        if packable:
            # both (narrow) sides in memory, view rows in index order then entity rows,
            # so a stable sort by one packed (key, time) integer orders ties as the
            # 3-column sort does, in about half its time
            frame = pl.concat(pl.collect_all([view_side, entity_side]), how="vertical")
            packed = _packed_key(frame, keys[0])
            if packed is not None:
                return frame.lazy().sort(packed, maintain_order=True, nulls_last=False)
            return frame.lazy().sort([*order, _IDX], nulls_last=False)
        return pl.concat([view_side, entity_side], how="vertical").sort(
            [*order, _IDX], nulls_last=False
        )

    def index_of(base: pl.LazyFrame) -> pl.Series:
        # for each entity row, in entity order: the view row index of its match, or null
        return (
            stacked(base)
            .with_columns(new_group.cum_sum().alias(_GROUP))
            .with_columns(
                pl.when(is_view).then(pl.col(_IDX)).forward_fill().alias("__fi"),
                pl.when(is_view).then(pl.col(_GROUP)).forward_fill().alias("__fg"),
                pl.when(is_view).then(pl.col(_TS)).forward_fill().alias("__ft"),
            )
            .filter(~is_view)
            .select(
                (pl.col(_IDX) & pl.lit((1 << 63) - 1, pl.UInt64)).alias(_ROW),
                pl.when(ok).then(pl.col("__fi")).alias(_IDX),
            )
            .sort(_ROW)
            .collect()[_IDX]
        )

    return _gatherer(q, index_of), {n: data_schema[f] for f, n in q_outputs(q)}


def q_outputs(q: ViewQuery) -> list[tuple[str, str]]:
    """(feature, output column) of a query."""
    return list(zip(q.features, q.output_names(), strict=True))


def _gatherer(
    q: ViewQuery, index_of: Callable[[pl.LazyFrame], pl.Series]
) -> Callable[[pl.LazyFrame], pl.DataFrame]:
    """From entity rows to the query's feature columns, given each row's matched index."""
    import polars as pl

    outputs = q_outputs(q)
    values = q.data.select(*[pl.col(f).alias(n) for f, n in outputs]).with_row_index(_IDX)

    def gathered(base: pl.LazyFrame) -> pl.DataFrame:
        # Only the matched rows of the wide columns are kept (the scan streams through
        # a filter), then put in entity order by one gather: no wide join or sort.
        if not outputs:
            return pl.DataFrame()
        wanted = index_of(base).cast(pl.get_index_type())
        needed = wanted.drop_nulls().unique().sort()
        found = values.filter(pl.col(_IDX).is_in(needed.implode())).collect()
        if not found[_IDX].is_sorted():
            found = found.sort(_IDX)
        # position of each view row in ``found``, by a dense lookup (a binary search is
        # several times slower); null indexes gather nulls
        got = found[_IDX]
        index_type = cast("pl.datatypes.IntegerType", got.dtype)  # _IDX holds row numbers
        position = pl.zeros(int(got[-1]) + 1 if len(got) else 0, got.dtype, eager=True).scatter(
            got, pl.int_range(len(got), dtype=index_type, eager=True)
        )
        at = position.gather(wanted)
        return found.select(pl.all().exclude(_IDX).gather(at))

    return gathered


def _pick_static(
    q: ViewQuery, key_types: dict[str, pl.DataType], data_schema: pl.Schema, as_of: datetime | None
) -> tuple[Callable[[pl.LazyFrame], pl.DataFrame], dict[str, pl.DataType]]:
    """A static view: each entity row gets its key's latest row, whatever the time."""
    import polars as pl

    view = q.view
    keys = list(view.join_keys)
    valid = pl.all_horizontal([pl.col(k).is_not_null() for k in keys])
    narrow = list(keys)
    created = view.created_timestamp_field
    if created:
        narrow.append(created)
    if as_of is not None:
        columns = (
            q.known_at
            if q.known_at is not None
            else tuple(c for c in (created, INGESTED_AT) if c and c in data_schema)
        )
        if not columns:
            raise ValidationError(
                f"feature view {view.name!r} has no created timestamp, so 'as known at' "
                "cannot be answered",
                hint="declare created_timestamp_field on the view",
            )
        cutoff = pl.lit(to_utc(as_of)).cast(pl.Datetime("us", "UTC"))
        for column in columns:
            narrow.append(column)
            valid = valid & (utc_timestamp(pl.col(column), data_schema[column]) <= cutoff)
    order = [
        *([utc_timestamp(pl.col(created), data_schema[created])] if created else []),
        pl.col(_IDX),
    ]
    latest = (
        q.data.select(list(dict.fromkeys(narrow)))
        .with_row_index(_IDX)
        .filter(valid)
        .with_columns(*[pl.col(k).cast(key_types[k]) for k in keys])
        .group_by(keys)
        .agg(pl.col(_IDX).sort_by(order).last())
    )

    def index_of(base: pl.LazyFrame) -> pl.Series:
        # null keys never match (a join does not equate nulls)
        return (
            base.select(_ROW, *[pl.col(k).cast(key_types[k]) for k in keys])
            .join(latest, on=keys, how="left")
            .sort(_ROW)
            .collect()[_IDX]
        )

    return _gatherer(q, index_of), {n: data_schema[f] for f, n in q_outputs(q)}


def _packed_key(frame: pl.DataFrame, key: str) -> pl.Expr | None:
    """One UInt64 that orders ``frame`` by (key, time), or None if the ranges do not fit."""
    import polars as pl

    epoch = pl.col(_TS).dt.epoch("us")
    lo_k, hi_k, lo_t, hi_t = frame.select(
        pl.col(key).min().alias("a"),
        pl.col(key).max().alias("b"),
        epoch.min().alias("c"),
        epoch.max().alias("d"),
    ).row(0)
    if lo_k is None or lo_t is None:
        return None
    span_t = hi_t - lo_t + 1
    if (hi_k - lo_k + 1) * span_t >= 1 << 63:
        return None
    return (pl.col(key).cast(pl.Int64) - lo_k).cast(pl.UInt64) * pl.lit(span_t, pl.UInt64) + (
        epoch - lo_t
    ).cast(pl.UInt64)
