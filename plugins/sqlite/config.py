"""Config classes of the SQLite backends (attrs only: imported when plugins load)."""

from __future__ import annotations

from typing import Any

from attrs import field, frozen, validators

DEFAULT_URL = "sqlite:///.conveyor/conveyor.db"
SYNCHRONOUS = ("normal", "full", "extra")


def _check_url(_instance: Any, _attribute: Any, value: str) -> None:
    if not value.startswith("sqlite:///"):
        raise ValueError(
            f"{value!r} is not a SQLite URL: write sqlite:///relative/path.db (relative to "
            "the project root) or sqlite:////absolute/path.db"
        )
    if value[len("sqlite:///"):] in ("", ":memory:"):
        raise ValueError(f"{value!r} names no file: several processes share the database, "
                         "so it must be a file")


@frozen(kw_only=True)
class SQLiteMetadataStoreConfig:
    """``[metadata_store]`` settings.

    Attributes:
        url: ``sqlite:///path`` (relative to the project root) or ``sqlite:////abs``.
        busy_timeout_s: how long a writer waits for another one before giving up.
        synchronous: SQLite's ``synchronous`` pragma in WAL mode: ``normal`` survives
            process crashes (a power loss may drop the last commits), ``full`` also
            survives power loss at the cost of an fsync per commit.
    """

    url: str = field(default=DEFAULT_URL, validator=_check_url)
    busy_timeout_s: float = field(default=30.0, validator=validators.gt(0))
    synchronous: str = field(default="normal", validator=validators.in_(SYNCHRONOUS))


@frozen(kw_only=True)
class SQLiteModelRegistryConfig:
    """``[model_registry]`` settings.

    Attributes:
        url: ``sqlite:///path`` (relative to the project root) or ``sqlite:////abs``.
        busy_timeout_s: how long a writer waits for another one before giving up.
        synchronous: see :class:`SQLiteMetadataStoreConfig`.
        require_approval: aliases (e.g. ``["production"]``) that a version may only
            take once someone approved it (``conveyor models approve``).
        verify_artifacts: check that every registered artifact URI lies inside the
            configured artifact store and has the SHA-256 given.  Turn off only for
            a registry that deliberately has no artifact store.
    """

    url: str = field(default=DEFAULT_URL, validator=_check_url)
    busy_timeout_s: float = field(default=30.0, validator=validators.gt(0))
    synchronous: str = field(default="normal", validator=validators.in_(SYNCHRONOUS))
    require_approval: tuple[str, ...] = field(default=(), converter=tuple)
    verify_artifacts: bool = True
