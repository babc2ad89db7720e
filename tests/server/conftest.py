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
            raise ConveyorError(
                f"alias {self.settings.alias!r} of {name!r} points at nothing",
                hint="promote a version first",
            )
        text = self.app.artifacts.read_uri(version.artifact_uri, sha256=version.sha256)
        self._booster = lgb.Booster(model_str=text.decode())
        self._version = version
        self._log = PredictionLog.for_app(self.app, flush_interval=0.2)
        self._httpd = ThreadingHTTPServer((self.settings.host, self.settings.port), _handler(self))
        self._httpd.daemon_threads = False  # server_close() joins requests in flight
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def _only_model(self) -> str:
        models = [m.name for m in self.app.registry.list_models()]
        if len(models) != 1:
            raise ConveyorError(
                f"[server] names no model and the registry has {len(models)}",
                hint='set model = "NAME" in [server]',
            )
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
        self._log.append(
            model=self._version.name,
            version=self._version.version,
            features=pl.DataFrame({f: rows[f] for f in names}),
            predictions=predictions,
        )
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


# -- the bundled http server: a model with every kind of feature, a started server -------

HTTP_MODEL = "churn"
HTTP_ALIAS = "production"
HTTP_TOKEN = "http-test-token-0123456789"


def rich_signature(*, extra: bool = False) -> Any:
    """A numeric non-nullable, a categorical and a nullable integer feature (and, with
    ``extra``, a fourth one: a changed signature)."""
    from conveyor.models import FeatureSpec, Signature

    features = [
        FeatureSpec(name="age", dtype="float64", nullable=False),
        FeatureSpec(name="plan", dtype="category", categories=("basic", "pro")),
        FeatureSpec(name="visits", dtype="int64"),
    ]
    if extra:
        features.append(FeatureSpec(name="tenure", dtype="float64"))
    return Signature(features=features, label="churned", objective="binary")


def register_rich_model(
    app: Any,
    *,
    seed: int = 0,
    extra: bool = False,
    alias: str | None = HTTP_ALIAS,
    corrupt: bool = False,
    features: Any = (),
) -> Any:
    """Train, register (with its signature) and, with ``alias``, promote a model; with
    ``corrupt`` the stored bytes no longer match the SHA-256 the registry records;
    ``features``: the ``FeatureViewUse`` lineage it is registered with."""
    import lightgbm as lgb
    import numpy as np

    signature = rich_signature(extra=extra)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, len(signature.features)))
    x[:, 1] = rng.integers(0, 2, 400)
    x[:, 2] = rng.integers(0, 20, 400)
    y = (x[:, 0] + x[:, 1] - 0.1 * x[:, 2] + rng.normal(size=400) > 0).astype(int)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": seed},
        lgb.Dataset(x, y, feature_name=list(signature.names)),
        num_boost_round=10,
    )
    text = booster.model_to_string().encode()
    key = f"models/{HTTP_MODEL}/{seed}-{int(extra)}-{int(corrupt)}/model.txt"
    info = app.artifacts.put_bytes(key, text, media_type="text/plain")
    version = app.registry.register(
        HTTP_MODEL,
        artifact_uri=info.uri,
        sha256=info.sha256,
        signature=signature,
        actor="test",
        features=features,
    )
    if corrupt:  # the stored bytes change behind the registry's back
        import os
        from urllib.parse import urlsplit

        path = urlsplit(info.uri).path
        os.chmod(path, 0o600)
        with open(path, "wb") as fh:
            fh.write(text[: len(text) // 2])
    if alias is not None:
        app.registry.set_alias(
            HTTP_MODEL, alias, version.version, actor="test", reason="test", force=True
        )
    return version


def write_server_config(app: Any, **keys: Any) -> Any:
    """Write ``[server]`` for the http backend (port 0, fast polling) and reload it."""
    from conveyor.config import Config

    keys = {
        "backend": "http",
        "model": HTTP_MODEL,
        "alias": HTTP_ALIAS,
        "port": 0,
        "poll_interval": 0.1,
        **keys,
    }
    lines = "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items() if v is not None)
    (app.root / "conveyor.toml").write_text(f"[server]\n{lines}")
    app.config = Config.load(cwd=app.root)
    app._backends.pop("server", None)
    return app


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


@pytest.fixture
def start_http(conveyor_app: Any) -> Any:
    """``start_http(**server_keys) -> started server`` with the rich model registered
    (once); every server is stopped at teardown."""
    started: list[Any] = []

    def start(**keys: Any) -> Any:
        if not conveyor_app.registry.list_models():
            register_rich_model(conveyor_app)
        write_server_config(conveyor_app, **keys)
        server = conveyor_app.server
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(timeout=5)


def send(
    url: str,
    method: str = "GET",
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    token: str | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request: ``(status, headers (lower-case names), JSON body or bytes)``;
    a dict or list ``body`` is sent as JSON."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    headers = dict(headers or {})
    if isinstance(body, dict | list):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(
            method,
            parts.path + (f"?{parts.query}" if parts.query else ""),
            body=body,
            headers=headers,
        )
        response = conn.getresponse()
        data = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
    if found.get("content-type", "").startswith("application/json"):
        return response.status, found, json.loads(data)
    return response.status, found, data
