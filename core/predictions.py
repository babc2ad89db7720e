"""The prediction log: what was predicted, for what input, by which model version.

Core code over the configured artifact store, not a backend kind: a log is
Parquet batches under a key layout, so it works on every artifact store (local,
S3, ...) and any writer that follows the layout and schema below is read the
same way.  Monitoring (drift, performance) reads it with :func:`scan_predictions`.

Key layout (one immutable Parquet object per written batch)::

    predictions/model=<model>/version=<version>/date=<YYYY-MM-DD>/<time>-<id>.parquet

``date`` is the UTC date of the batch's ``time``.  Schema of every object:

========== =========================== ==============================================
column     type                        meaning
========== =========================== ==============================================
request_id string, not null            the request the row belongs to
time       timestamp[us, UTC], not null when it was predicted
model      string, not null            registered model name
version    int64, not null             registered model version
features   struct<feature: type, ...>  the input row, one field per feature
prediction float64 or list<float64>    the prediction (a list for multi-class)
entity_key string, nullable            the entity the row is about, if known
========== =========================== ==============================================

Writing is off the hot path: :meth:`PredictionLog.append` only queues the batch;
a background thread groups queued batches per model/version/date and writes one
object per group.  The queue is bounded: a full queue drops the batch and counts
its records (``stats().dropped``) rather than block a request.  Every object is
committed atomically by the artifact store, so a reader never sees half a batch.
"""

from __future__ import annotations

import logging
import threading
import time as _time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, cast

from attrs import frozen

from conveyor.artifacts import validate_key
from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    import polars as pl

    from conveyor.artifacts import ArtifactStore

log = logging.getLogger("conveyor.predictions")

PREFIX = "predictions"
COLUMNS = ("request_id", "time", "model", "version", "features", "prediction", "entity_key")


@frozen(kw_only=True)
class PredictionLogStats:
    """Counters of one :class:`PredictionLog`, in records (rows).

    Attributes:
        accepted: records queued by ``append``.
        written: records committed to the store.
        dropped: records refused because the queue was full.
        failed: records whose batch could not be written (see the log).
        pending: records queued and not yet written.
        objects: Parquet objects committed.
    """

    accepted: int = 0
    written: int = 0
    dropped: int = 0
    failed: int = 0
    pending: int = 0
    objects: int = 0


@frozen
class _Batch:
    model: str
    version: int
    time: datetime
    rows: int
    features: Any
    predictions: Any
    request_ids: Any
    entity_keys: Any


def batch_key(model: str, version: int, at: datetime, *, prefix: str = PREFIX) -> str:
    """A new object key for a batch of ``model`` v``version`` predicted at ``at``."""
    at = at.astimezone(UTC)
    name = f"{at:%Y%m%dT%H%M%S.%fZ}-{uuid.uuid4().hex[:12]}.parquet"
    return f"{prefix}/model={model}/version={version}/date={at:%Y-%m-%d}/{name}"


class PredictionLog:
    """Appends prediction batches to an artifact store from a background thread.

    Args:
        store: the artifact store to write to (usually ``app.artifacts``).
        max_pending: records that may wait in the queue; beyond it batches drop.
        flush_records: write as soon as this many records are queued ...
        flush_interval: ... or when the oldest queued batch is this many seconds old.
        prefix: the key prefix of the log.

    Thread-safe; ``close()`` (or leaving a ``with`` block) writes what is queued.
    Do not change a features frame or mapping after handing it to ``append``.
    """

    def __init__(
        self,
        store: ArtifactStore,
        *,
        max_pending: int = 100_000,
        flush_records: int = 10_000,
        flush_interval: float = 1.0,
        prefix: str = PREFIX,
    ) -> None:
        if max_pending < 1 or flush_records < 1 or flush_interval <= 0:
            raise ValueError("max_pending and flush_records must be >= 1, flush_interval > 0")
        self.store = store
        self.prefix = validate_key(prefix, what="prediction log prefix")
        self.max_pending = max_pending
        self.flush_records = flush_records
        self.flush_interval = flush_interval
        self._cond = threading.Condition()
        self._queue: list[_Batch] = []
        self._counts = dict.fromkeys(("accepted", "written", "dropped", "failed", "objects"), 0)
        self._pending = 0
        self._oldest: float | None = None
        self._done = 0  # records accepted so far that were written or failed
        self._flush_wanted = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._checked_models: set[str] = set()

    @classmethod
    def for_app(cls, app: Any, **options: Any) -> PredictionLog:
        """A log on the app's configured artifact store."""
        return cls(app.artifacts, **options)

    # -- writing -------------------------------------------------------------------------

    def append(
        self,
        *,
        model: str,
        version: int,
        features: pl.DataFrame | Mapping[str, Sequence[Any]],
        predictions: Sequence[Any] | Any,
        request_ids: str | Sequence[str] | None = None,
        entity_keys: Sequence[str | None] | None = None,
        time: datetime | None = None,
    ) -> bool:
        """Queue one batch (one request's rows); ``False`` if dropped (queue full).

        ``request_ids`` is one id for every row, one per row, or ``None`` (a fresh
        id); ``time`` defaults to now (UTC).  Cheap: nothing is converted here.
        """
        rows = len(predictions)
        width = (
            features.height
            if hasattr(features, "height")
            else (len(next(iter(features.values()))) if features else 0)
        )
        if (
            width != rows
            or (not isinstance(request_ids, str | None) and len(request_ids) != rows)
            or (entity_keys is not None and len(entity_keys) != rows)
        ):
            raise ConveyorError(
                f"prediction log: {rows} predictions but {width} feature rows "
                "(or a request id / entity key list of another length)",
                hint="pass one feature row, request id and entity key per prediction",
            )
        if model not in self._checked_models:
            validate_key(model, what="model name in the prediction log")
            self._checked_models.add(model)
        at = time or datetime.now(UTC)
        if at.tzinfo is None:
            raise ConveyorError(
                "prediction log: time must be timezone-aware", hint="pass datetime.now(UTC)"
            )
        batch = _Batch(
            model,
            int(version),
            at.astimezone(UTC),
            rows,
            features,
            predictions,
            request_ids if request_ids is not None else uuid.uuid4().hex,
            entity_keys,
        )
        with self._cond:
            if self._closed:
                raise ConveyorError(
                    "the prediction log is closed", hint="append before close(), or open a new log"
                )
            if self._pending + rows > self.max_pending:
                self._counts["dropped"] += rows
                return False
            self._queue.append(batch)
            self._pending += rows
            self._counts["accepted"] += rows
            first = self._oldest is None
            if first:
                self._oldest = _time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, daemon=True, name="conveyor-prediction-log"
                )
                self._thread.start()
            # an idle writer waits without a deadline: the first queued batch gives it one
            if first or self._pending >= self.flush_records:
                self._cond.notify_all()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything queued before this call; ``False`` if ``timeout`` ran out."""
        deadline = None if timeout is None else _time.monotonic() + timeout
        with self._cond:
            target = self._counts["accepted"]
            self._flush_wanted = True
            self._cond.notify_all()
            while self._done < target:
                remaining = None if deadline is None else deadline - _time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, then stop the writer thread; later appends raise."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> PredictionLogStats:
        """The counters now."""
        with self._cond:
            return PredictionLogStats(pending=self._pending, **self._counts)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    if self._closed and not self._queue:
                        return
                    wait = (
                        None
                        if self._oldest is None
                        else max(0.0, self._oldest + self.flush_interval - _time.monotonic())
                    )
                    self._cond.wait(wait)
                batches, self._queue = self._queue, []
                self._oldest = None
                self._flush_wanted = False
            written, failed, objects = self._write(batches)
            with self._cond:
                self._pending -= written + failed
                self._done += written + failed
                self._counts["written"] += written
                self._counts["failed"] += failed
                self._counts["objects"] += objects
                self._cond.notify_all()

    def _due(self) -> bool:
        if not self._queue:
            return False
        return (
            self._flush_wanted
            or self._closed
            or self._pending >= self.flush_records
            or _time.monotonic() - (self._oldest or 0.0) >= self.flush_interval
        )

    def _write(self, batches: list[_Batch]) -> tuple[int, int, int]:
        """Write one object per model/version/date; returns (written, failed, objects)."""
        import polars as pl

        groups: dict[tuple[str, int, date], list[tuple[_Batch, pl.DataFrame]]] = {}
        failed = 0
        for batch in batches:
            try:
                frame = _to_frame(batch)
            except Exception as exc:  # bad input must not stop the writer
                failed += batch.rows
                log.warning(
                    "prediction log: dropped a batch of %s v%s that cannot be stored: %s",
                    batch.model,
                    batch.version,
                    exc,
                )
                continue
            groups.setdefault((batch.model, batch.version, batch.time.date()), []).append(
                (batch, frame)
            )
        written = objects = 0
        for (model, version, _day), members in groups.items():
            try:
                parts = [pl.concat([f for _, f in members], how="vertical_relaxed")]
            except Exception:  # e.g. two feature layouts for one version: one object each
                parts = [f for _, f in members]
            for part in parts:
                try:
                    self.store.put_table(
                        batch_key(
                            model, version, cast("datetime", part["time"].min()), prefix=self.prefix
                        ),
                        part,
                        overwrite=False,
                    )
                except Exception as exc:
                    failed += part.height
                    log.warning(
                        "prediction log: could not write %d records of %s v%s: %s",
                        part.height,
                        model,
                        version,
                        exc,
                    )
                    continue
                written += part.height
                objects += 1
        return written, failed, objects


def _to_frame(batch: _Batch) -> pl.DataFrame:
    import polars as pl

    features = (
        batch.features
        if isinstance(batch.features, pl.DataFrame)
        else pl.DataFrame(dict(batch.features))
    )
    predictions = batch.predictions
    if getattr(predictions, "ndim", 1) == 2:  # numpy (rows, classes)
        predictions = predictions.tolist()
    prediction = pl.Series("prediction", predictions, strict=False)
    prediction = prediction.cast(
        pl.List(pl.Float64) if prediction.dtype.is_nested() else pl.Float64
    )
    ids = batch.request_ids
    return pl.DataFrame(
        {
            "request_id": pl.Series(
                [ids] * batch.rows if isinstance(ids, str) else list(ids), dtype=pl.String
            ),
            # one value repeated: no Python object per row (a list of datetimes held the
            # GIL ~0.6 ms per 512 rows, stalling a server's event loop)
            "time": _constant(batch.time, batch.rows, pl.Datetime("us", "UTC")),
            "model": _constant(batch.model, batch.rows, pl.String),
            "version": _constant(batch.version, batch.rows, pl.Int64),
            "features": features.to_struct("features"),
            "prediction": prediction,
            "entity_key": (
                pl.Series(list(batch.entity_keys), dtype=pl.String)
                if batch.entity_keys is not None
                else _constant(None, batch.rows, pl.String)
            ),
        }
    )


def _constant(value: Any, rows: int, dtype: Any) -> pl.Series:
    import polars as pl

    return pl.Series([value], dtype=dtype).new_from_index(0, rows)


# -- reading --------------------------------------------------------------------------------


def prediction_keys(
    store: ArtifactStore,
    *,
    model: str | None = None,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    prefix: str = PREFIX,
) -> list[tuple[str, str]]:
    """``(key, sha256)`` of the log's objects that may hold rows in the filter, by key."""
    if version is not None and model is None:
        raise ConveyorError(
            "a prediction-log scan by version needs the model too", hint="pass model= with version="
        )
    narrowed = f"{prefix}/"
    if model is not None:
        narrowed += f"model={validate_key(model, what='model name')}/"
        if version is not None:
            narrowed += f"version={int(version)}/"
    first = start.astimezone(UTC).date().isoformat() if start is not None else None
    last = end.astimezone(UTC).date().isoformat() if end is not None else None
    found = []
    for info in store.list(narrowed):
        if not info.key.endswith(".parquet"):
            continue
        day = next((p[5:] for p in info.key.split("/") if p.startswith("date=")), None)
        if day is not None and ((first and day < first) or (last and day > last)):
            continue
        found.append((info.key, info.sha256))
    return found


def scan_predictions(
    store: ArtifactStore,
    *,
    model: str | None = None,
    version: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    prefix: str = PREFIX,
) -> pl.LazyFrame:
    """A lazy frame of the logged rows of ``model`` (and ``version``), ``start <= time < end``.

    Only objects whose partition can match are opened; each is verified by the
    store before it is scanned.  With nothing logged the frame is empty (without a
    ``features`` column, whose fields are not known then).
    """
    import polars as pl

    for bound in (start, end):
        if bound is not None and bound.tzinfo is None:
            raise ConveyorError(
                "prediction-log time bounds must be timezone-aware",
                hint="pass e.g. datetime(2024, 3, 1, tzinfo=UTC)",
            )
    frames = []
    for key, sha256 in prediction_keys(
        store, model=model, version=version, start=start, end=end, prefix=prefix
    ):
        frame = store.scan_table(key, sha256=sha256)
        stamp = frame.collect_schema().get("time")
        if isinstance(stamp, pl.Datetime) and stamp.time_zone is None:
            frame = frame.with_columns(pl.col("time").dt.replace_time_zone("UTC"))
        frames.append(
            frame.with_columns(pl.col("time").dt.cast_time_unit("us").dt.convert_time_zone("UTC"))
        )
    if not frames:
        return pl.LazyFrame(
            schema={
                "request_id": pl.String,
                "time": pl.Datetime("us", "UTC"),
                "model": pl.String,
                "version": pl.Int64,
                "prediction": pl.Float64,
                "entity_key": pl.String,
            }
        )
    frame = pl.concat(frames, how="diagonal_relaxed")
    if model is not None:
        frame = frame.filter(pl.col("model") == model)
    if version is not None:
        frame = frame.filter(pl.col("version") == int(version))
    if start is not None:
        frame = frame.filter(pl.col("time") >= start.astimezone(UTC))
    if end is not None:
        frame = frame.filter(pl.col("time") < end.astimezone(UTC))
    return frame


__all__ = [
    "COLUMNS",
    "PREFIX",
    "PredictionLog",
    "PredictionLogStats",
    "batch_key",
    "prediction_keys",
    "scan_predictions",
]
