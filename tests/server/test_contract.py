"""The reference stdlib server passes the server conformance suite."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from conveyor.testing.server import FEATURES, ServerContract


def call(url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class TestStdlibServer(ServerContract):
    @pytest.fixture
    def server_backend(self, stdlib_server):
        return stdlib_server

    def health(self, server):
        return call(f"{server.address}/health")[0] == 200

    def predict(self, server, rows, *, token=None):
        status, body = call(f"{server.address}/predict", {"rows": rows}, token)
        return status, body.get("predictions")

    def test_predictions_are_logged(self, server, served):
        from conveyor.predictions import scan_predictions

        server.start()
        rows = {f: [0.1, 0.2] for f in FEATURES}
        assert self.predict(server, rows)[0] == 200
        server.stop(timeout=5)  # flushes the log
        logged = scan_predictions(served.artifacts, model="contract").collect()
        assert logged.height == 2
        assert logged["features"].struct.field("f0").to_list() == [0.1, 0.2]
