"""Bundled plugin ``sqlite``: the metadata store and registry backend on one SQLite file.

Both backends default to ``sqlite:///.conveyor/conveyor.db`` (relative to the
project root).  This module stays light: the stores are imported on first use.
"""

from __future__ import annotations

from typing import Any

from conveyor import hookimpl


@hookimpl
def register_metadata_stores(register: Any) -> None:
    register(
        "sqlite",
        factory="conveyor.plugins.sqlite.metadata:SQLiteMetadataStore",
        config_class="conveyor.plugins.sqlite.config:SQLiteMetadataStoreConfig",
        schemes=("sqlite",),
        description="SQLite file (WAL, BEGIN IMMEDIATE, versioned migrations)",
    )


@hookimpl
def register_model_registries(register: Any) -> None:
    register(
        "sqlite",
        factory="conveyor.plugins.sqlite.registry:SQLiteRegistryBackend",
        config_class="conveyor.plugins.sqlite.config:SQLiteModelRegistryConfig",
        schemes=("sqlite",),
        description="SQLite file (atomic alias moves, append-only audit log)",
    )
