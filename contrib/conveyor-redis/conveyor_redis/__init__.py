"""Plugin ``redis``: the online feature store on a Redis server.

Selected by ``url = "redis://..."`` in ``[online_store]``.  This module stays light:
hookimpls only.  The config class is named, and imported when the store is
configured; the store (and redis-py) load on first use.
"""

from __future__ import annotations

from typing import Any

from conveyor import hookimpl

#: URL schemes that select this store (defined here: importing the config module
#: would build its attrs class at every start-up)
SCHEMES = ("redis", "rediss", "unix")


@hookimpl
def register_online_stores(register: Any) -> None:
    register(
        "redis",
        factory="conveyor_redis.store:RedisOnlineStore",
        config_class="conveyor_redis.config:RedisOnlineStoreConfig",
        schemes=SCHEMES,
        extras=("conveyor-redis",),
        description="Redis (a hash per entity key, pipelined writes and lookups, "
        "expiry from the view's TTL)",
    )
