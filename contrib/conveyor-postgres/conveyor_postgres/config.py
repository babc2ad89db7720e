"""Config classes of the PostgreSQL backends (attrs only: imported when plugins load)."""

from __future__ import annotations

import re
from typing import Any

from attrs import field, frozen, validators

SCHEMES = ("postgresql", "postgres")
_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _check_url(_instance: Any, _attribute: Any, value: str) -> None:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in SCHEMES or not rest:
        raise ValueError(
            f"{value!r} is not a PostgreSQL URL: write postgresql://user@host:5432/database"
        )


def _check_schema(_instance: Any, _attribute: Any, value: str) -> None:
    if not _SCHEMA.match(value):
        raise ValueError(f"{value!r} is not a plain schema name (letters, digits, '_')")


@frozen(kw_only=True)
class PostgresConfig:
    """``[metadata_store]`` / ``[model_registry]`` settings of the ``postgresql`` backends.

    Attributes:
        url: ``postgresql://user@host:5432/database`` (libpq URL; ``postgres://`` too).
        schema: the schema holding Conveyor's tables (created on first use), so
            several projects can share one database.
        pool_size: connections each process keeps open at most.
        connect_timeout_s: how long to wait for the server (or a free connection).
        lock_timeout_s: how long a writer waits for a row another one holds before
            its transaction is rolled back and retried.
    """

    url: str = field(validator=_check_url)
    schema: str = field(default="public", validator=_check_schema)
    pool_size: int = field(default=4, validator=validators.ge(1))
    connect_timeout_s: float = field(default=10.0, validator=validators.gt(0))
    lock_timeout_s: float = field(default=30.0, validator=validators.gt(0))


@frozen(kw_only=True)
class PostgresMetadataStoreConfig(PostgresConfig):
    """``[metadata_store]`` settings (see :class:`PostgresConfig`)."""


@frozen(kw_only=True)
class PostgresModelRegistryConfig(PostgresConfig):
    """``[model_registry]`` settings (see :class:`PostgresConfig`).

    Promotion rules and artifact checks are core's (``[promotion]``), the same
    whichever registry backend is configured.
    """
