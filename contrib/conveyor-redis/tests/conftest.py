"""Fixtures of the Redis tests: a key prefix per test, every key under it deleted after.

The server is ``CONVEYOR_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``).
Without a server the tests fail under CI (``CI`` set) and are skipped otherwise.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

SERVER = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(SERVER, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        message = f"no Redis server at {SERVER}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SERVER


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix; every key under it is deleted at teardown."""
    import redis

    prefix = f"conveyor-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.unlink(*keys[start : start + 1000])
    client.close()
