"""The feature store and online store interfaces.

A :class:`FeatureStore` owns feature-view definitions and their offline data
(point-in-time retrieval) and materializes the latest values into an
:class:`OnlineStore`, which answers key lookups at serving time.  Training and
serving read the same definitions, so both see the same features.

Conformance suites: :mod:`conveyor.testing.features`.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from conveyor.convert import to_tuple
from conveyor.errors import ValidationError

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from conveyor.features.definitions import Entity, FeatureView
    from conveyor.features.parity import ParityReport
    from conveyor.interfaces.metadata import Definition

#: Columns an online store returns beside the features: the event time of the value.
ONLINE_EVENT_TS = "_event_ts"


@frozen(kw_only=True)
class IngestReport:
    """What one ``ingest`` call wrote.

    Attributes:
        view: the feature view.
        rows: rows appended.
        files: the keys of the new offline files (one per time partition).
        ingested_at: the ingestion time stamped on every row (UTC).
        skipped: rows of the batch already stored (ingestion writes only what is new).
    """

    view: str
    rows: int
    files: tuple[str, ...] = field(converter=to_tuple)
    ingested_at: datetime
    skipped: int = 0


@frozen(kw_only=True)
class MaterializationState:
    """Where materialization of one view stands in an online store.

    The online store keeps it in the same transaction as the rows it describes,
    so a run killed part-way resumes exactly where it stopped.

    Attributes:
        view: the feature view.
        watermark: every offline row with event time <= this (and in a file up to
            ``last_file``) has been materialized; ``None`` before the first run.
        last_file: the newest offline file (ingestion order) already considered.
        pending_end: the ``end`` of a run in progress, else ``None``.
        pending_last_file: the newest file that run considers.
        pending_done: how many of that run's rows are already written.
    """

    view: str
    watermark: datetime | None = None
    last_file: str | None = None
    pending_end: datetime | None = None
    pending_last_file: str | None = None
    pending_done: int = 0


@frozen(kw_only=True)
class MaterializeReport:
    """What one ``materialize`` call did.

    Attributes:
        view: the feature view.
        start: the previous watermark (``None``: from the beginning).
        end: the new watermark.
        rows: rows upserted into the online store (latest per key in the window).
        batches: write transactions used.
        resumed: whether an interrupted run was finished first.
    """

    view: str
    start: datetime | None
    end: datetime
    rows: int
    batches: int
    resumed: bool = False


class FeatureStore(abc.ABC):
    """Feature views: definitions, offline data, point-in-time retrieval, materialization.

    What an implementation must guarantee (``conveyor.testing.features`` checks it):

    * **Point-in-time correctness.** For an entity row with timestamp ``t``, a
      view contributes its row with the greatest event time ``e <= t`` (inclusive)
      and ``t - e <= ttl`` (inclusive); ties on ``e`` go to the greatest created
      time, then to the row ingested last.  Every entity row is kept, in order;
      unmatched features are null.
    * **As known at.** With ``as_of``, rows created or ingested after ``as_of``
      are invisible, so a past query replays identically after late data lands.
    * **Atomic, schema-checked ingestion.** A batch is checked against the view's
      definition before anything is written; readers see all of it or none.
    * **Materialization** is incremental (a watermark), idempotent (the same
      window twice, or a resumed run, leaves the online store byte-identical),
      never lets an older event overwrite a newer one, and works in bounded
      batches.
    """

    # -- definitions -----------------------------------------------------------------

    @abc.abstractmethod
    def apply(self, definitions: Iterable[Entity | FeatureView]) -> list[Definition]:
        """Register entity and feature-view definitions, versioned; returns the versions."""

    @abc.abstractmethod
    def get_view(self, name: str) -> FeatureView:
        """The latest registered definition of a view; NotFoundError lists the known ones."""

    @abc.abstractmethod
    def list_views(self) -> list[FeatureView]:
        """Every registered view (latest definitions), by name."""

    # -- offline ---------------------------------------------------------------------

    @abc.abstractmethod
    def ingest(
        self, view: str | FeatureView, table: pa.Table | pl.DataFrame | str | os.PathLike[str]
    ) -> IngestReport:
        """Append a batch to a view's offline store, schema-checked (ValidationError).

        Only rows not stored yet are written (by content): ingesting the same data
        again writes nothing, and growing data adds only its new rows.

        A path is read with :func:`conveyor.datafiles.read_table_file` (Parquet, or
        ``*.csv``): a bad file is a ValidationError naming it, and nothing is written.
        """

    @abc.abstractmethod
    def read_view(self, view: str | FeatureView) -> pl.LazyFrame:
        """Every offline row of a view, in ingestion order, with ``_ingested_at``."""

    @abc.abstractmethod
    def get_historical_features(
        self,
        entities: pl.DataFrame | pl.LazyFrame,
        features: Sequence[str | FeatureView],
        *,
        timestamp: str = "event_timestamp",
        as_of: datetime | None = None,
        full_names: bool = False,
    ) -> pl.LazyFrame:
        """Point-in-time-correct feature values for each entity row.

        Args:
            entities: join keys of every requested view plus ``timestamp``.
            features: ``"view:feature"`` / ``"view:*"`` references (or views).
            timestamp: the entity frame's timestamp column.
            as_of: "as known at": ignore rows created/ingested after it.
            full_names: name output columns ``view__feature``.
        """

    # -- online ----------------------------------------------------------------------

    @abc.abstractmethod
    def materialize(
        self,
        view: str | FeatureView,
        *,
        end: datetime | None = None,
        batch_size: int | None = None,
        start: datetime | None = None,
    ) -> MaterializeReport:
        """Copy the latest values with event time in ``start .. end`` (default: from the
        beginning to now) online; an ``end`` before the watermark is a ValidationError."""

    @abc.abstractmethod
    def get_online_features(
        self,
        features: Sequence[str | FeatureView],
        entity_keys: pa.Table | pl.DataFrame | Sequence[dict[str, Any]],
        *,
        at: datetime | None = None,
        full_names: bool = False,
    ) -> pa.Table:
        """The latest materialized values for many entity keys at once, in key order.

        A value older than its view's TTL at ``at`` (default now) is null.
        """

    def get_online_rows(
        self,
        features: Sequence[str | FeatureView],
        entity_keys: Sequence[Mapping[str, Any]],
        *,
        at: datetime | None = None,
        full_names: bool = False,
    ) -> list[dict[str, Any]]:
        """``get_online_features`` for a few keys without Arrow: serving's per-request path.

        One dict per entity key, in key order, with the same columns and values as
        ``get_online_features(...).to_pylist()``.  The default goes through
        ``get_online_features``; a store overrides it when it can answer faster.
        """
        keys = [dict(k) for k in entity_keys]
        return self.get_online_features(features, keys, at=at, full_names=full_names).to_pylist()

    def parity(
        self,
        view: str | FeatureView,
        *,
        sample: int = 100,
        seed: int = 0,
        at: datetime | None = None,
    ) -> ParityReport:
        """Compare online values with offline point-in-time values for sampled keys,
        at ``at`` (default: the watermark); see :mod:`conveyor.features.parity`."""
        from conveyor.features.parity import check_parity

        return check_parity(self, view, sample=sample, seed=seed, at=at)

    @property
    @abc.abstractmethod
    def online(self) -> OnlineStore:
        """The online store this feature store materializes into."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""


class OnlineStore(abc.ABC):
    """Latest feature values per entity key, for low-latency lookups.

    What an implementation must guarantee (``conveyor.testing.features`` checks it):

    * ``write`` upserts in one transaction together with the materialization
      state; a row never replaces one whose ``(event, created, ingestion)`` order
      is newer or equal, so replays change nothing;
    * ``read`` returns one row per requested key, in the order given, nulls where
      a key is unknown, with the value's event time in ``_event_ts``;
    * the same sequence of writes yields the same stored state.
    """

    @abc.abstractmethod
    def prepare(self, view: FeatureView) -> bool:
        """Create (or, if the definition changed, reset) storage for ``view``.

        Returns whether the storage was (re)created, which resets its state.
        """

    @abc.abstractmethod
    def write(
        self, view: FeatureView, table: pa.Table, *, state: MaterializationState | None = None
    ) -> int:
        """Upsert rows, never over a newer one, and record ``state``, atomically.

        ``table`` has the view's join keys and features plus ``_event_ts`` and
        ``_created_ts`` (UTC timestamps, the latter nullable), ``_file`` (string)
        and ``_row`` (integer): the ingestion order that breaks ties.
        Returns the number of rows changed.
        """

    @abc.abstractmethod
    def set_state(self, state: MaterializationState) -> None:
        """Record the materialization state of one view (in its own transaction)."""

    @abc.abstractmethod
    def get_state(self, view: str) -> MaterializationState | None:
        """The materialization state of a view, ``None`` before the first write."""

    @abc.abstractmethod
    def read(
        self, view: FeatureView, keys: pa.Table, features: Sequence[str] | None = None
    ) -> pa.Table:
        """Values for ``keys`` (null where missing), in the order of ``keys``.

        The result has the key columns, ``_event_ts`` and the features (all of the
        view's when ``features`` is ``None``), typed as the definition says.
        """

    def read_rows(
        self,
        view: FeatureView,
        keys: Sequence[tuple[Any, ...]],
        features: Sequence[str] | None = None,
    ) -> list[tuple[Any, ...]]:
        """``read`` for a few keys without Arrow: one tuple per key, in the order given.

        A key is a tuple of the view's join-key values in ``view.join_keys`` order.  A
        row holds the values of ``read``'s columns, in its order (the keys, ``_event_ts``,
        the features), as Python values: ``datetime`` in UTC, ``date``, ``bool``, NaN as
        a float NaN, ``None`` where the key is unknown.  The default goes through
        ``read``; a store overrides it when it can answer faster.
        """
        import pyarrow as pa

        from conveyor.features.pit import arrow_type

        key_types = view.key_types
        check_key_tuples(view.name, tuple(key_types), keys)
        columns = list(zip(*keys, strict=True)) if keys else [()] * len(key_types)
        table = pa.table(
            {
                k: pa.array(list(c), arrow_type(t))
                for (k, t), c in zip(key_types.items(), columns, strict=True)
            }
        )
        got = self.read(view, table, features)
        return list(zip(*(c.to_pylist() for c in got.columns), strict=True))

    @abc.abstractmethod
    def sample_keys(self, view: FeatureView, n: int, *, seed: int = 0) -> pa.Table:
        """Up to ``n`` stored keys, chosen reproducibly from ``seed``."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""


def check_key_tuples(
    view: str, join_keys: tuple[str, ...], keys: Sequence[tuple[Any, ...]]
) -> None:
    """Refuse a key of ``read_rows`` that is not a tuple of the view's join-key values."""
    for key in keys:
        if not isinstance(key, tuple) or len(key) != len(join_keys):
            raise ValidationError(
                f"the key {key!r} is not a tuple of the {len(join_keys)} join key value(s) "
                f"({', '.join(join_keys)}) of feature view {view!r}",
                hint="pass one tuple per key, its values in the view's join-key order",
            )
