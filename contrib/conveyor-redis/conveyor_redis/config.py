"""Config class of the Redis online store (imported when the store is configured)."""

from __future__ import annotations

from typing import Any

from attrs import field, frozen, validators

from conveyor_redis import SCHEMES


def _check_url(_instance: Any, _attribute: Any, value: str) -> None:
    scheme, sep, _ = value.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"{value!r} is not a Redis URL: write redis://host:6379/0")


def _check_prefix(_instance: Any, _attribute: Any, value: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not a key prefix (non-empty, no spaces)")


@frozen(kw_only=True)
class RedisOnlineStoreConfig:
    """``[online_store]`` settings of the ``redis`` online store.

    Attributes:
        url: ``redis://[user:password@]host:6379/0`` (``rediss://`` for TLS).
        prefix: prepended to every key, so several projects can share a server.
        rows_per_call: rows one server-side upsert call handles; a ``write`` sends
            all of its calls in one ``MULTI``/``EXEC`` block.
        socket_timeout_s: how long to wait for the server.
    """

    url: str = field(validator=_check_url)
    prefix: str = field(default="conveyor:", validator=_check_prefix)
    rows_per_call: int = field(default=1000, validator=validators.gt(0))
    socket_timeout_s: float = field(default=10.0, validator=validators.gt(0))
