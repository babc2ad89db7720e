"""Bundled plugin ``features``: the ``local`` feature store and the ``sqlite`` online store.

The offline store keeps each view's rows as Parquet files in the configured
artifact store (new, atomically committed files, partitioned by event time); the
online store keeps the latest row per entity key in a SQLite file.  This module
stays light: the stores are imported on first use.
"""

from __future__ import annotations

from typing import Any

from conveyor import hookimpl


@hookimpl
def register_feature_stores(register: Any) -> None:
    register(
        "local",
        factory="conveyor.plugins.features.offline:LocalFeatureStore",
        config_class="conveyor.plugins.features.config:LocalFeatureStoreConfig",
        description="Parquet files in the artifact store; point-in-time joins on polars",
    )


@hookimpl
def register_online_stores(register: Any) -> None:
    register(
        "sqlite",
        factory="conveyor.plugins.features.online:SQLiteOnlineStore",
        config_class="conveyor.plugins.features.config:SQLiteOnlineStoreConfig",
        schemes=("sqlite",),
        description="SQLite file (WAL, primary-key lookups, newest event wins)",
    )
