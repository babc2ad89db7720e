"""Plugin ``postgres``: the metadata store and registry backend on a PostgreSQL server.

Both are selected by ``url = "postgresql://..."`` in ``[metadata_store]`` and
``[model_registry]``.  This module stays light: hookimpls and config classes only;
the stores (and psycopg) are imported on first use.
"""

from __future__ import annotations

from typing import Any

from conveyor import hookimpl
from conveyor_postgres.config import SCHEMES

EXTRAS = ("conveyor-postgres",)


@hookimpl
def register_metadata_stores(register: Any) -> None:
    register(
        "postgresql",
        factory="conveyor_postgres.metadata:PostgresMetadataStore",
        config_class="conveyor_postgres.config:PostgresMetadataStoreConfig",
        schemes=SCHEMES,
        extras=EXTRAS,
        description="PostgreSQL (connection pool, versioned migrations)",
    )


@hookimpl
def register_model_registries(register: Any) -> None:
    register(
        "postgresql",
        factory="conveyor_postgres.registry:PostgresRegistryBackend",
        config_class="conveyor_postgres.config:PostgresModelRegistryConfig",
        schemes=SCHEMES,
        extras=EXTRAS,
        description="PostgreSQL (row-locked version allocation and alias moves, "
        "LISTEN/NOTIFY change feed)",
    )


@hookimpl
def register_commands(cli: Any) -> None:
    from conveyor_postgres.command import migrate

    cli.add_command(migrate)
