"""Servers tests need, on 127.0.0.1 only: a free port, and S3 (moto in server mode).

Import a fixture into a ``conftest.py`` to use it::

    from conveyor.testing.services import moto_s3_endpoint  # noqa: F401 - a fixture
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_s3_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>``: moto's S3 in server mode, for the whole session."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


__all__ = ["free_port", "moto_s3_endpoint"]
