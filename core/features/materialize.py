"""Materialization: the latest offline row per key, copied to an online store.

Incremental with a watermark.  The online store's state says which event times
(``<= watermark``) and which offline files (``<= last_file``, in ingestion order)
are already in.  A run to ``end`` takes every row with event time ``<= end`` that
was not covered (newer event time, or a file ingested since, so late data is
picked up), keeps the latest row per key (event time, created time, ingestion
order), sorts by key and writes fixed-size batches, each in one transaction with
the progress made.  Hence:

* the same window twice writes nothing the second time (the store is untouched);
* a run killed part-way resumes from its recorded target and batch, and the
  sequence of committed transactions is the same as an uninterrupted run's, so
  the online store ends byte-identical;
* an older event never overwrites a newer one (the online store's upsert guard);
* memory is bounded by the batch size: the candidate rows are reduced by a
  streaming polars query into a temporary Parquet file read back batch by batch.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from attrs import evolve

from conveyor.features.definitions import FeatureView
from conveyor.interfaces.features import MaterializationState, MaterializeReport, OnlineStore

if TYPE_CHECKING:
    import polars as pl

#: ``rows(upto_file, watermark, last_file)``: offline rows of files <= ``upto_file``
#: (at least those that may hold rows not yet covered), with ``_file`` and ``_row``.
RowSource = Callable[[str | None, datetime | None, str | None], "pl.LazyFrame"]


def materialize(
    online: OnlineStore,
    view: FeatureView,
    *,
    rows: RowSource,
    newest_file: str | None,
    end: datetime | None = None,
    start: datetime | None = None,
    batch_size: int = 50_000,
) -> MaterializeReport:
    """Bring ``online`` up to ``end`` (default now) for ``view``; see the module doc.

    ``start`` (a backfill window ``start .. end``) leaves out rows with an event
    time before it.  An ``end`` before the watermark is refused: the online store
    already holds later values, and the watermark never moves back.
    """
    import polars as pl

    from conveyor.errors import ValidationError
    from conveyor.features.definitions import INGESTED_AT
    from conveyor.features.pit import to_utc, utc_timestamp

    online.prepare(view)
    state = online.get_state(view.name) or MaterializationState(view=view.name)
    resumed = state.pending_end is not None
    if resumed:
        target_end = state.pending_end
        target_file = state.pending_last_file
    else:
        target_end = to_utc(end) if end is not None else datetime.now(UTC)
        if state.watermark is not None and target_end < state.watermark:
            raise ValidationError(
                f"feature view {view.name!r} is materialized up to "
                f"{state.watermark.isoformat()}; an end of {target_end.isoformat()} would "
                "move it back",
                hint="give an end at or after the watermark; to compare past values use "
                "`conveyor features parity VIEW --at TIME`",
            )
        if start is not None and to_utc(start) > target_end:
            raise ValidationError(
                f"the materialization window starts ({to_utc(start)}) after it ends ({target_end})",
                hint="give START before END",
            )
        target_file = newest_file
        if state.watermark == target_end and state.last_file == target_file:
            return MaterializeReport(
                view=view.name, start=state.watermark, end=target_end, rows=0, batches=0
            )
    assert target_end is not None
    start_mark, start_file = state.watermark, state.last_file

    lf = rows(target_file, start_mark, start_file)
    schema = lf.collect_schema()
    keys = list(view.join_keys)
    # a static view's rows count from when they were ingested
    event_column = view.timestamp_field or INGESTED_AT
    event = utc_timestamp(pl.col(event_column), schema[event_column])
    cutoff = pl.lit(target_end).cast(pl.Datetime("us", "UTC"))
    keep = event <= cutoff
    if start is not None:
        keep = keep & (event >= pl.lit(to_utc(start)).cast(pl.Datetime("us", "UTC")))
    if start_mark is not None:
        fresh = event > pl.lit(start_mark).cast(pl.Datetime("us", "UTC"))
        if start_file is not None:
            fresh = fresh | (pl.col("_file") > pl.lit(start_file))
        keep = keep & fresh
    created = (
        utc_timestamp(pl.col(view.created_timestamp_field), schema[view.created_timestamp_field])
        if view.created_timestamp_field
        else pl.lit(None, pl.Datetime("us", "UTC"))
    )
    candidates = lf.filter(keep).select(
        *keys,
        *view.feature_names,
        event.alias("_event_ts"),
        created.alias("_created_ts"),
        "_file",
        "_row",
    )
    latest = candidates.sort(
        [*keys, "_event_ts", "_created_ts", "_file", "_row"], nulls_last=False
    ).unique(subset=keys, keep="last", maintain_order=True)

    if not resumed:
        state = evolve(state, pending_end=target_end, pending_last_file=target_file, pending_done=0)
        online.set_state(state)
    folder = Path(tempfile.mkdtemp(prefix="conveyor-materialize-"))
    written = batches = 0
    try:
        path = folder / "latest.parquet"
        latest.sink_parquet(path, engine="streaming")
        total = pl.scan_parquet(path).select(pl.len()).collect().item()
        done = state.pending_done
        for offset in range(done - done % batch_size, total, batch_size):
            if offset + batch_size <= done:
                continue
            chunk = pl.scan_parquet(path).slice(offset, batch_size).collect()
            state = evolve(state, pending_done=offset + chunk.height)
            written += online.write(view, chunk.to_arrow(), state=state)
            batches += 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    online.set_state(
        MaterializationState(view=view.name, watermark=target_end, last_file=target_file)
    )
    return MaterializeReport(
        view=view.name,
        start=start_mark,
        end=target_end,
        rows=written,
        batches=batches,
        resumed=resumed,
    )
