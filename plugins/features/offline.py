"""The ``local`` feature store: offline Parquet in the artifact store, polars joins.

Layout under ``[feature_store] prefix`` (default ``features``) of the artifact store::

    features/<view>/<partition>/<batch>.parquet   one file per time partition of a batch
    features/<view>/_batches/<batch>.json          the batch's commit record

``<batch>`` is ``<ingestion time in ns, 20 digits>-<random hex>``, so batch ids sort
in ingestion order.  A batch's data files are written first (each one atomically,
write-once), its commit record last: readers only see batches that have a record,
so an ingestion killed part-way leaves nothing visible.  Every row carries the
batch's ``_ingested_at``, which "as known at" queries compare against.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from attrs import Factory, frozen

from conveyor.errors import NotFoundError, ValidationError
from conveyor.features.definitions import INGESTED_AT, Entity, FeatureView, parse_refs
from conveyor.interfaces.features import (
    FeatureStore,
    IngestReport,
    MaterializeReport,
    OnlineStore,
)
from conveyor.plugins.features.batches import (
    FILE,
    ROW,
    conform,
    content_fingerprint,
    empty_frame,
    partitioning,
    partitions,
)
from conveyor.plugins.features.config import LocalFeatureStoreConfig
from conveyor.plugins.features.lookup import LRU, Part, ViewCache, plan, run, run_rows

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

    from conveyor.app import Conveyor
    from conveyor.artifacts import ArtifactStore
    from conveyor.interfaces.metadata import Definition, MetadataStore

ENTITY = "entity"
FEATURE_VIEW = "feature_view"


@frozen(kw_only=True)
class Batch:
    """One committed ingestion batch.

    Attributes:
        id: sortable batch id (ingestion order).
        ingested_at: the ingestion time stamped on its rows.
        files: ``(key, sha256, rows, min event, max event)`` of each data file
            (the event range is empty for a static view).
        fingerprints: data file key -> :func:`content_fingerprint` of its rows.
    """

    id: str
    ingested_at: datetime
    files: tuple[tuple[str, str, int, str, str], ...]
    fingerprints: dict[str, str] = Factory(dict)

    @property
    def rows(self) -> int:
        return sum(f[2] for f in self.files)


class LocalFeatureStore(FeatureStore):
    """Feature views kept as Parquet files in the artifact store.

    Definitions are versioned in the metadata store; materialization goes to the
    configured online store.  Stores can also be given directly (tests, notebooks).
    """

    def __init__(
        self,
        *,
        app: Conveyor | None = None,
        config: LocalFeatureStoreConfig | None = None,
        artifacts: ArtifactStore | None = None,
        metadata: MetadataStore | None = None,
        online: OnlineStore | None = None,
    ) -> None:
        self.app = app
        self.config = config or LocalFeatureStoreConfig()
        self._artifacts = artifacts
        self._metadata = metadata
        self._online = online
        self._views = ViewCache(self._definition)
        #: (references, full_names) -> (the planned lookup, whether views were passed)
        self._requests: LRU[tuple[Any, ...], tuple[tuple[Part, ...], bool]] = LRU(256)

    # -- collaborators ---------------------------------------------------------------

    @property
    def artifacts(self) -> ArtifactStore:
        if self._artifacts is None:
            assert self.app is not None, "a LocalFeatureStore needs an app or an artifact store"
            self._artifacts = self.app.artifacts
        return self._artifacts

    @property
    def metadata(self) -> MetadataStore:
        if self._metadata is None:
            assert self.app is not None, "a LocalFeatureStore needs an app or a metadata store"
            self._metadata = self.app.metadata
        return self._metadata

    @property
    def online(self) -> OnlineStore:
        if self._online is None:
            assert self.app is not None, "a LocalFeatureStore needs an app or an online store"
            self._online = self.app.online_store
        return self._online

    # -- definitions -----------------------------------------------------------------

    def apply(self, definitions: Iterable[Entity | FeatureView]) -> list[Definition]:
        items = list(definitions)
        entities: dict[str, Entity] = {}
        for item in items:
            found = (
                [item]
                if isinstance(item, Entity)
                else (list(item.entities) if isinstance(item, FeatureView) else None)
            )
            if found is None:
                raise ValidationError(
                    f"{item!r} is not an Entity or a FeatureView",
                    hint="apply only conveyor.features definitions",
                )
            for entity in found:
                if entities.setdefault(entity.name, entity) != entity:
                    raise ValidationError(
                        f"two different entities are called {entity.name!r}",
                        hint="give each entity one definition and reuse it in every view",
                    )
        for item in items:
            if isinstance(item, FeatureView):
                item.key_types  # noqa: B018 - raises when two entities disagree on a key
        recorded = [
            self.metadata.put_definition(ENTITY, e.name, e.to_spec())
            for e in sorted(entities.values(), key=lambda e: e.name)
        ]
        views = sorted((i for i in items if isinstance(i, FeatureView)), key=lambda v: v.name)
        recorded += [self.metadata.put_definition(FEATURE_VIEW, v.name, v.to_spec()) for v in views]
        self._views.clear()
        self._requests.clear()
        return recorded

    def get_view(self, name: str | FeatureView) -> FeatureView:
        if isinstance(name, FeatureView):
            return name
        return self._views.get(name)

    def _definition(self, name: str) -> Definition:
        try:
            return self.metadata.get_definition(FEATURE_VIEW, name)
        except NotFoundError:
            known = [d.name for d in self.metadata.list_definitions(FEATURE_VIEW)]
            raise NotFoundError(
                f"no feature view named {name!r} is registered",
                hint=f"registered: {', '.join(known) or 'none'}; register views with "
                "`conveyor features apply`",
            ) from None

    def list_views(self) -> list[FeatureView]:
        return [
            FeatureView.from_spec(d.spec)
            for d in sorted(self.metadata.list_definitions(FEATURE_VIEW), key=lambda d: d.name)
        ]

    # -- ingestion -------------------------------------------------------------------

    def ingest(
        self, view: str | FeatureView, table: pa.Table | pl.DataFrame | str | os.PathLike[str]
    ) -> IngestReport:
        import polars as pl

        from conveyor.datafiles import read_table_file

        v = self.get_view(view)
        if isinstance(table, str | os.PathLike):
            table = read_table_file(table)  # guarded: a bad file is a ValidationError
        df = conform(v, table if isinstance(table, pl.DataFrame) else pl.DataFrame(table))
        del table  # the conformed frame is the only copy kept
        now = time.time_ns()
        ingested_at = datetime.fromtimestamp(now // 1000 / 1e6, UTC)
        batch_id = f"{now:020d}-{secrets.token_hex(4)}"
        stamp = pl.lit(ingested_at).cast(pl.Datetime("us", "UTC")).alias(INGESTED_AT)
        scheme = partitioning(v, df, self.config.partition)
        stored = self.batches(v) if df.height else []
        files, fingerprints, skipped = [], {}, 0
        for label, chunk in partitions(v, df, scheme):
            fingerprint = content_fingerprint(chunk)
            fresh = self._new_rows(v, chunk, fingerprint, stored)
            skipped += chunk.height - fresh.height
            if not fresh.height:
                continue
            key = f"{self._base(v.name)}/{scheme}={label}/{batch_id}.parquet"
            fresh = fresh.with_columns(stamp)
            info = self.artifacts.put_table(key, fresh, overwrite=False)
            ts = v.timestamp_field  # None for a static view; else a Datetime column
            first, last = (
                ("", "")
                if ts is None
                else (
                    cast("datetime", fresh[ts].min()).isoformat(),
                    cast("datetime", fresh[ts].max()).isoformat(),
                )
            )
            files.append((key, info.sha256, fresh.height, first, last))
            fingerprints[key] = (
                fingerprint
                if fresh.height == chunk.height
                else content_fingerprint(fresh.drop(INGESTED_AT))
            )
        files.sort()
        if files:  # a batch with nothing new writes nothing at all
            record = {
                "id": batch_id,
                "ingested_at": ingested_at.isoformat(),
                "files": files,
                "fingerprints": fingerprints,
            }
            self.artifacts.put_bytes(
                f"{self._base(v.name)}/_batches/{batch_id}.json",
                json.dumps(record, sort_keys=True).encode(),
                overwrite=False,
                media_type="application/json",
            )
        return IngestReport(
            view=v.name,
            rows=sum(f[2] for f in files),
            files=tuple(f[0] for f in files),
            ingested_at=ingested_at,
            skipped=skipped,
        )

    def _new_rows(
        self, v: FeatureView, chunk: pl.DataFrame, fingerprint: str, stored: Sequence[Batch]
    ) -> pl.DataFrame:
        """The rows of ``chunk`` that no stored file of the view already holds.

        A stored file with the same content fingerprint means none (the common case:
        a rerun, or a month ingested again); otherwise the chunk is compared row by
        row with the stored files whose event range overlaps it.
        """
        if not stored:
            return chunk
        if any(fingerprint in b.fingerprints.values() for b in stored):
            return chunk.head(0)
        if v.static:
            span: tuple[datetime | None, datetime | None] = (None, None)
        else:
            times = chunk[v.timestamp_field]  # type: ignore[index]
            span = (times.min(), times.max())  # type: ignore[assignment]
        existing = self._scan(v, stored, event_range=span).drop(INGESTED_AT).collect()
        if not existing.height:
            return chunk
        return chunk.join(
            existing.unique(), on=chunk.columns, how="anti", nulls_equal=True, maintain_order="left"
        )

    def _base(self, view: str) -> str:
        return f"{self.config.prefix}/{view}"

    def batches(self, view: str | FeatureView) -> list[Batch]:
        """The committed batches of a view, in ingestion order."""
        v = self.get_view(view)
        found = []
        for info in self.artifacts.list(f"{self._base(v.name)}/_batches/"):
            record = json.loads(self.artifacts.get_bytes(info.key, sha256=info.sha256))
            found.append(
                Batch(
                    id=record["id"],
                    ingested_at=datetime.fromisoformat(record["ingested_at"]),
                    files=tuple(tuple(f) for f in record["files"]),
                    fingerprints=record.get("fingerprints", {}),
                )
            )
        return sorted(found, key=lambda b: b.id)

    def _scan(
        self,
        v: FeatureView,
        batches: Sequence[Batch],
        *,
        order: bool = False,
        event_range: tuple[datetime | None, datetime | None] = (None, None),
    ) -> pl.LazyFrame:
        import polars as pl

        lo, hi = event_range
        frames = []
        for batch in batches:
            for key, sha256, _rows, first, last in batch.files:
                if first and (
                    (hi is not None and datetime.fromisoformat(first) > hi)
                    or (lo is not None and datetime.fromisoformat(last) < lo)
                ):
                    continue  # no row of this file can matter
                frame = self.artifacts.scan_table(key, sha256=sha256)
                if order:
                    frame = frame.with_row_index(ROW).with_columns(
                        pl.lit(batch.id).alias(FILE), pl.col(ROW).cast(pl.Int64)
                    )
                frames.append(frame)
        if not frames:
            return empty_frame(v, order=order).lazy()
        return pl.concat(frames, how="vertical")

    def read_view(self, view: str | FeatureView) -> pl.LazyFrame:
        v = self.get_view(view)
        return self._scan(v, self.batches(v))

    # -- retrieval -------------------------------------------------------------------

    def get_historical_features(
        self,
        entities: pl.DataFrame | pl.LazyFrame,
        features: Sequence[str | FeatureView],
        *,
        timestamp: str = "event_timestamp",
        as_of: datetime | None = None,
        full_names: bool = False,
    ) -> pl.LazyFrame:
        import polars as pl

        from conveyor.features.pit import ViewQuery, point_in_time_join, to_utc, utc_timestamp

        grouped = parse_refs(features)
        given = {f.name: f for f in features if isinstance(f, FeatureView)}
        span: tuple[datetime | None, datetime | None] = (None, None)
        if isinstance(entities, pl.DataFrame) and timestamp in entities.columns and entities.height:
            col = entities.select(utc_timestamp(pl.col(timestamp), entities.schema[timestamp]))
            lo, hi = col.min().item(), col.max().item()
            span = (lo, hi)
        queries = []
        for name, wanted in grouped.items():
            v = given.get(name) or self.get_view(name)
            feats = tuple(v.feature_names if wanted is None else wanted)
            batches = self.batches(v)
            if as_of is not None:
                batches = [b for b in batches if b.ingested_at <= to_utc(as_of)]
            lo, hi = span
            lo = lo - v.ttl if lo is not None and v.ttl is not None else None
            data = self._scan(v, batches, event_range=(lo, hi))
            names = tuple(f"{v.name}__{f}" for f in feats) if full_names else ()
            queries.append(ViewQuery(view=v, data=data, features=feats, names=names))
        return point_in_time_join(entities, queries, timestamp=timestamp, as_of=as_of)

    # -- online ----------------------------------------------------------------------

    def materialize(
        self,
        view: str | FeatureView,
        *,
        end: datetime | None = None,
        batch_size: int | None = None,
        start: datetime | None = None,
    ) -> MaterializeReport:
        from conveyor.features.materialize import materialize

        v = self.get_view(view)
        batches = self.batches(v)

        def rows(upto: str | None, since: datetime | None, after_file: str | None) -> pl.LazyFrame:
            # a batch entirely older than the watermark and already considered is skipped
            chosen = [b for b in batches if upto is not None and b.id <= upto]
            if since is not None and after_file is not None:
                chosen = [
                    b
                    for b in chosen
                    if b.id > after_file
                    or any(not f[4] or datetime.fromisoformat(f[4]) > since for f in b.files)
                ]
            return self._scan(v, chosen, order=True)

        return materialize(
            self.online,
            v,
            rows=rows,
            newest_file=batches[-1].id if batches else None,
            end=end,
            start=start,
            batch_size=batch_size or self.config.batch_size,
        )

    def get_online_features(
        self,
        features: Sequence[str | FeatureView],
        entity_keys: pa.Table | pl.DataFrame | Sequence[dict[str, Any]],
        *,
        at: datetime | None = None,
        full_names: bool = False,
    ) -> pa.Table:
        parts = self._lookup_parts(features, full_names)
        return run(parts, self.online, _as_arrow(entity_keys), at=at)

    def get_online_rows(
        self,
        features: Sequence[str | FeatureView],
        entity_keys: Sequence[Mapping[str, Any]],
        *,
        at: datetime | None = None,
        full_names: bool = False,
    ) -> list[dict[str, Any]]:
        parts = self._lookup_parts(features, full_names)
        return run_rows(parts, self.online, entity_keys, at=at)

    def _lookup_parts(
        self, features: Sequence[str | FeatureView], full_names: bool
    ) -> tuple[Part, ...]:
        """The planned lookup of ``features``, from the cache while its views are current."""
        refresh = self.config.view_refresh_s
        # by value: an equal view passed as a new object fails the `is` checks below
        request = (features if type(features) is tuple else tuple(features), full_names)
        cached = self._requests.get(request)
        fresh = self._views.get
        if (  # references only: the hot path
            cached is not None
            and not cached[1]
            and all(fresh(p.view.name, max_age=refresh) is p.view for p in cached[0])
        ):
            return cached[0]
        given = {f.name: f for f in features if isinstance(f, FeatureView)}

        def resolve(name: str) -> FeatureView:
            return given.get(name) or self._views.get(name, max_age=refresh)

        if cached is not None and all(resolve(p.view.name) is p.view for p in cached[0]):
            return cached[0]
        parts = plan(features, resolve, full_names=full_names)
        self._requests.put(request, (parts, bool(given)))
        return parts

    def close(self) -> None:
        """Nothing to release: the app closes the stores it opened."""


def _as_arrow(keys: Any) -> pa.Table:
    import pyarrow as pa

    if isinstance(keys, pa.Table):
        return keys
    if hasattr(keys, "to_arrow"):
        return keys.to_arrow()
    rows = list(keys)
    if not rows:
        raise ValidationError("no entity keys were given", hint="pass at least one key")
    return pa.Table.from_pylist(rows)
