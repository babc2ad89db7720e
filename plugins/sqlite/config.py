"""Config classes of the SQLite backends (attrs only: imported when plugins load)."""

from __future__ import annotations

from typing import Any

from attrs import field, frozen, validators

DEFAULT_URL = "sqlite:///.conveyor/conveyor.db"
#: SQLite's ``synchronous`` pragma values (kept here so loading plugins stays light).
SYNCHRONOUS = ("full", "normal", "extra")


def _check_url(_instance: Any, _attribute: Any, value: str) -> None:
    if not value.startswith("sqlite:///"):
        raise ValueError(
            f"{value!r} is not a SQLite URL: write sqlite:///relative/path.db (relative to "
            "the project root) or sqlite:////absolute/path.db"
        )
    if value[len("sqlite:///") :] in ("", ":memory:"):
        raise ValueError(
            f"{value!r} names no file: several processes share the database, so it must be a file"
        )


@frozen(kw_only=True)
class SQLiteMetadataStoreConfig:
    """``[metadata_store]`` settings.

    Attributes:
        url: ``sqlite:///path`` (relative to the project root) or ``sqlite:////abs``.
        busy_timeout_s: how long a writer waits for another one before giving up.
        synchronous: SQLite's ``synchronous`` pragma in WAL mode: ``full`` (the
            default) fsyncs every commit, so a write that returned survives a power
            loss; ``normal`` survives process crashes only (a power loss may drop
            the last commits) and saves that fsync.
    """

    url: str = field(default=DEFAULT_URL, validator=_check_url)
    busy_timeout_s: float = field(default=30.0, validator=validators.gt(0))
    synchronous: str = field(default="full", validator=validators.in_(SYNCHRONOUS))


@frozen(kw_only=True)
class SQLiteModelRegistryConfig:
    """``[model_registry]`` settings.

    Promotion rules and artifact checks are not here: they are core's (the
    ``[promotion]`` section), the same whichever registry backend is configured.

    Attributes:
        url: ``sqlite:///path`` (relative to the project root) or ``sqlite:////abs``.
        busy_timeout_s: how long a writer waits for another one before giving up.
        synchronous: see :class:`SQLiteMetadataStoreConfig`.
    """

    url: str = field(default=DEFAULT_URL, validator=_check_url)
    busy_timeout_s: float = field(default=30.0, validator=validators.gt(0))
    synchronous: str = field(default="full", validator=validators.in_(SYNCHRONOUS))
