"""A small real server for the tests (stdlib HTTP; not shipped).

It serves the model the configured alias points at (loaded through the registry,
SHA-256 verified by the artifact store), guards ``/predict`` with the bearer
token, and logs every prediction through :mod:`conveyor.predictions`.
"""

from __future__ import annotations

import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from attrs import frozen

from conveyor import hookimpl
from conveyor.errors import ConveyorError
from conveyor.interfaces.server import Server


@frozen(kw_only=True)
class StdlibConfig:
    """The backend's own key: the largest request body accepted, in bytes."""

    max_body: int = 1 << 20


class StdlibServer(Server):
    """``GET /health`` (open) and ``POST /predict`` ``{"rows": {feature: [values]}}``."""

    def __init__(self, *, app: Any, config: StdlibConfig) -> None:
        super().__init__(app=app, config=config)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._booster: Any = None
        self._version: Any = None
        self._log: Any = None

    def start(self) -> None:
        import lightgbm as lgb

        from conveyor.predictions import PredictionLog

        name = self.settings.model or self._only_model()
        version = self.app.registry.resolve(name, self.settings.alias)
        if version is None:
            raise ConveyorError(f"alias {self.settings.alias!r} of {name!r} points at nothing",
                                hint="promote a version first")
        text = self.app.artifacts.read_uri(version.artifact_uri, sha256=version.sha256)
        self._booster = lgb.Booster(model_str=text.decode())
        self._version = version
        self._log = PredictionLog.for_app(self.app, flush_interval=0.2)
        self._httpd = ThreadingHTTPServer((self.settings.host, self.settings.port),
                                          _handler(self))
        self._httpd.daemon_threads = False  # server_close() joins requests in flight
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def _only_model(self) -> str:
        models = [m.name for m in self.app.registry.list_models()]
        if len(models) != 1:
            raise ConveyorError(f"[server] names no model and the registry has {len(models)}",
                                hint='set model = "NAME" in [server]')
        return models[0]

    def stop(self, timeout: float = 10.0) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        closer = threading.Thread(target=lambda: (httpd.shutdown(), httpd.server_close()))
        closer.start()
        closer.join(timeout)
        if self._log is not None:
            self._log.close(timeout)

    @property
    def ready(self) -> bool:
        return self._httpd is not None and self._booster is not None

    @property
    def address(self) -> str:
        if self._httpd is None:
            raise ConveyorError("the server is not started", hint="call start() first")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def predict_rows(self, rows: dict[str, list[float]]) -> list[float]:
        import numpy as np
        import polars as pl

        names = self._booster.feature_name()
        matrix = np.column_stack([np.asarray(rows[f], dtype=float) for f in names])
        predictions = self._booster.predict(matrix)
        self._log.append(model=self._version.name, version=self._version.version,
                         features=pl.DataFrame({f: rows[f] for f in names}),
                         predictions=predictions)
        return predictions.tolist()


def _handler(server: StdlibServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet tests
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._reply(200, {"ready": server.ready})
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:
            token = server.settings.token
            sent = self.headers.get("Authorization", "")
            if token is not None and not hmac.compare_digest(sent, f"Bearer {token}"):
                self._reply(401, {"error": "missing or wrong bearer token"})
                return
            length = int(self.headers.get("Content-Length", 0))
            if self.path != "/predict" or length > server.config.max_body:
                self._reply(404 if self.path != "/predict" else 413, {"error": "refused"})
                return
            try:
                rows = json.loads(self.rfile.read(length))["rows"]
                self._reply(200, {"predictions": server.predict_rows(rows)})
            except (KeyError, ValueError, TypeError) as exc:
                self._reply(400, {"error": f"bad request: {exc}"})

    return Handler


class StdlibServerPlugin:
    """Registers the ``stdlib`` server."""

    @hookimpl
    def register_servers(self, register: Any) -> None:
        register("stdlib", factory=StdlibServer, config_class=StdlibConfig)


@pytest.fixture
def stdlib_server(register_plugin: Any) -> str:
    """Registers the ``stdlib`` server; returns its ``[server]`` selection lines."""
    register_plugin(StdlibServerPlugin(), "stdlib-server")
    return 'backend = "stdlib"\nmax_body = 65536\n'
