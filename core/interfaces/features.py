"""The feature store and online store interfaces."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa


class FeatureStore(abc.ABC):
    """Feature views: definitions, offline data, point-in-time retrieval, materialization.

    What an implementation must guarantee: historical retrieval is point-in-time
    correct (each feature value has event time <= the entity row's timestamp and
    lies within the view's TTL); ingestion is atomic; materialization is idempotent
    and never lets an older event overwrite a newer one.
    """

    @abc.abstractmethod
    def apply(self, definitions: Iterable[Any]) -> list[Any]:
        """Register (versioned) entity and feature-view definitions."""

    @abc.abstractmethod
    def ingest(self, view: str, table: pa.Table | pl.DataFrame) -> Any:
        """Append a batch to a view's offline store, schema-checked."""

    @abc.abstractmethod
    def get_historical_features(self, entities: pl.DataFrame | pl.LazyFrame,
                                features: Sequence[str], *,
                                as_of: datetime | None = None) -> pl.LazyFrame:
        """Point-in-time-correct feature values for each entity row."""

    @abc.abstractmethod
    def materialize(self, view: str, *, end: datetime | None = None) -> Any:
        """Copy the latest values up to ``end`` into the online store (incremental)."""

    @abc.abstractmethod
    def get_online_features(self, features: Sequence[str],
                            entity_keys: pa.Table | pl.DataFrame | Sequence[dict]) -> pa.Table:
        """The latest materialized values for many entity keys at once."""


class OnlineStore(abc.ABC):
    """Latest feature values per entity key, for low-latency lookups."""

    @abc.abstractmethod
    def write(self, view: str, table: pa.Table) -> int:
        """Upsert rows; a row never replaces one with a newer event time."""

    @abc.abstractmethod
    def read(self, view: str, keys: pa.Table, features: Sequence[str]) -> pa.Table:
        """Values for ``keys`` (null where missing), in the order of ``keys``."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""
