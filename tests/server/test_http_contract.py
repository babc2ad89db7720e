"""The bundled ``http`` server passes the server conformance suite."""

from __future__ import annotations

import pytest

from conveyor.testing.server import ServerContract

from .conftest import send


class TestHttpServer(ServerContract):
    @pytest.fixture
    def server_backend(self):
        return 'backend = "http"\npoll_interval = 0.2\n'

    def health(self, server):
        return send(f"{server.address}/health")[0] == 200

    def predict(self, server, rows, *, token=None):
        status, _headers, body = send(
            f"{server.address}/predict", "POST", {"columns": rows}, token=token
        )
        return status, body.get("predictions")
