"""Config classes of the bundled feature-store backends (attrs only: light to import)."""

from __future__ import annotations

from typing import Any

from attrs import field, frozen, validators

DEFAULT_ONLINE_URL = "sqlite:///.conveyor/online.db"


def _check_prefix(_instance: Any, _attribute: Any, value: str) -> None:
    if not value or value.startswith("/") or ".." in value.split("/"):
        raise ValueError(f"{value!r} is not a relative artifact-store prefix (e.g. 'features')")


def _check_url(_instance: Any, _attribute: Any, value: str) -> None:
    if not value.startswith("sqlite:///") or value[len("sqlite:///") :] in ("", ":memory:"):
        raise ValueError(
            f"{value!r} is not a SQLite file URL: write sqlite:///relative/path.db "
            "(relative to the project root) or sqlite:////absolute/path.db"
        )


@frozen(kw_only=True)
class LocalFeatureStoreConfig:
    """``[feature_store]`` settings of the ``local`` feature store.

    Attributes:
        prefix: where in the artifact store the offline Parquet files live.
        definitions: the module ``conveyor features apply`` imports by default.
        batch_size: rows per online-store transaction when materializing.
        partition: time partitioning of offline files: ``day``, ``month`` or ``auto``
            (daily once a batch holds 100,000 rows a day, else monthly).
        view_refresh_s: how stale a view definition online lookups may use: they ask
            the metadata store again at most this often (``apply`` in the same process
            takes effect at once; 0 asks on every lookup).
    """

    prefix: str = field(default="features", validator=_check_prefix)
    definitions: str = "features"
    batch_size: int = field(default=50_000, validator=validators.gt(0))
    partition: str = field(default="auto", validator=validators.in_(("auto", "day", "month")))
    view_refresh_s: float = field(default=1.0, validator=validators.ge(0))


@frozen(kw_only=True)
class SQLiteOnlineStoreConfig:
    """``[online_store]`` settings of the ``sqlite`` online store.

    Attributes:
        url: ``sqlite:///path`` (relative to the project root) or ``sqlite:////abs``.
        busy_timeout_s: how long a writer waits for another one before giving up.
    """

    url: str = field(default=DEFAULT_ONLINE_URL, validator=_check_url)
    busy_timeout_s: float = field(default=30.0, validator=validators.gt(0))
