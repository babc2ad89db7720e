"""Conformance suite for model-server plugins.

Subclass :class:`ServerContract`, provide ``server_backend`` (the ``[server]``
lines that select your backend and set its own keys) and implement the two
protocol methods, :meth:`~ServerContract.health` and
:meth:`~ServerContract.predict`, for your protocol.  Register your plugin in the
test (``register_plugin``) if it is not installed.  The suite registers a small
LightGBM model under the alias ``champion`` and builds the server through
``app.server``::

    class TestMyServer(ServerContract):
        @pytest.fixture
        def server_backend(self, register_plugin):
            register_plugin(my_plugin, "my-server")
            return 'backend = "mine"\\nworkers = 2\\n'

        def health(self, server):
            return requests.get(f"{server.address}/health").ok

        def predict(self, server, rows, *, token=None):
            ...  # -> (status, predictions)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

from conveyor.errors import ConfigError
from conveyor.interfaces.server import Server

MODEL = "contract"
ALIAS = "champion"
TOKEN = "contract-token-0123456789"
FEATURES = ("f0", "f1", "f2")


def register_model(app: Any, *, name: str = MODEL, alias: str = ALIAS, seed: int = 0) -> Any:
    """Train a small LightGBM model, register it and point ``alias`` at it."""
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, len(FEATURES)))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 4, "verbose": -1, "seed": seed},
        lgb.Dataset(x, y, feature_name=list(FEATURES)),
        num_boost_round=5,
    )
    info = app.artifacts.put_bytes(
        f"models/{name}/{seed}/model.txt",
        booster.model_to_string().encode(),
        media_type="text/plain",
    )
    from conveyor.models import FeatureSpec, Signature

    signature = Signature(
        features=[FeatureSpec(name=f, dtype="float64") for f in FEATURES],
        label="y",
        objective="binary",
    )
    version = app.registry.register(
        name, artifact_uri=info.uri, sha256=info.sha256, signature=signature, actor="contract"
    )
    app.registry.set_alias(name, alias, version.version, actor="contract")
    return version


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _port_open(address: str) -> bool:
    parts = urlsplit(address)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


class ServerContract:
    """The behaviour every :class:`~conveyor.interfaces.Server` must show."""

    @pytest.fixture
    def server_backend(self) -> str:
        raise NotImplementedError("a ServerContract subclass must define `server_backend`")

    def health(self, server: Server) -> bool:
        """Whether the server's health route answers (no token sent)."""
        raise NotImplementedError

    def predict(
        self, server: Server, rows: dict[str, list[float]], *, token: str | None = None
    ) -> tuple[int, list[float] | None]:
        """``(HTTP-like status, predictions or None)`` for ``rows`` sent with ``token``."""
        raise NotImplementedError

    # -- fixtures ------------------------------------------------------------------------

    @pytest.fixture
    def configure(self, conveyor_app: Any, server_backend: str) -> Callable[..., Any]:
        """``configure(**shared)``: write ``[server]`` with the backend and shared keys."""
        from conveyor.config import Config

        def write(**shared: Any) -> Any:
            shared = {"model": MODEL, "alias": ALIAS, "port": 0, **shared}
            lines = "".join(
                f"{k} = {v!r}\n".replace("'", '"') for k, v in shared.items() if v is not None
            )
            (conveyor_app.root / "conveyor.toml").write_text(f"[server]\n{server_backend}{lines}")
            conveyor_app.config = Config.load(cwd=conveyor_app.root)
            return conveyor_app

        return write

    @pytest.fixture
    def served(self, configure: Callable[..., Any]) -> Any:
        """The app with a model registered under ``champion`` and ``[server]`` written."""
        app = configure()
        register_model(app)
        return app

    @pytest.fixture
    def server(self, served: Any) -> Iterator[Server]:
        server = served.server
        yield server
        server.stop(timeout=5)

    # -- lifecycle -----------------------------------------------------------------------

    def test_is_a_server_with_the_shared_settings(self, server: Server) -> None:
        assert isinstance(server, Server)
        assert (server.settings.model, server.settings.alias) == (MODEL, ALIAS)
        assert not server.ready, "not ready before start"

    def test_start_returns_and_the_server_becomes_ready(self, server: Server) -> None:
        began = time.monotonic()
        server.start()
        assert time.monotonic() - began < 30, "start() must not block"
        assert wait_for(lambda: server.ready)
        parts = urlsplit(server.address)
        assert parts.scheme in ("http", "https")
        assert parts.hostname == "127.0.0.1"
        assert parts.port, "address names the real port when port = 0"
        assert _port_open(server.address)
        assert self.health(server)

    def test_serves_the_version_the_alias_points_at(self, server: Server, served: Any) -> None:
        import lightgbm as lgb

        version = served.registry.resolve(MODEL, ALIAS)
        booster = lgb.Booster(
            model_str=served.artifacts.read_uri(
                version.artifact_uri, sha256=version.sha256
            ).decode()
        )
        rows = {"f0": [-1.0, 0.2, 2.0], "f1": [0.5, -0.3, 1.0], "f2": [0.0, 0.0, 3.0]}
        server.start()
        assert wait_for(lambda: server.ready)
        status, predictions = self.predict(server, rows)
        assert status == 200
        assert predictions is not None
        expected = booster.predict(np.column_stack([rows[f] for f in FEATURES]))
        np.testing.assert_allclose(predictions, expected, rtol=1e-9)

    def test_stop_releases_the_port_and_is_idempotent(self, server: Server) -> None:
        server.start()
        assert wait_for(lambda: server.ready)
        address = server.address
        server.stop(timeout=5)
        assert not server.ready
        assert wait_for(lambda: not _port_open(address), timeout=5)
        server.stop(timeout=5)

    def test_serve_forever_returns_when_asked_to_stop(self, server: Server) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=server.serve_forever, args=(stop,))
        thread.start()
        try:
            assert wait_for(lambda: server.ready)
        finally:
            stop.set()
            thread.join(30)
        assert not thread.is_alive()
        assert not server.ready

    # -- the policy core applies to every server ------------------------------------------

    def test_a_public_host_without_a_token_is_refused(self, configure: Callable[..., Any]) -> None:
        app = configure(host="0.0.0.0")
        with pytest.raises(ConfigError, match="no bearer token") as info:
            _ = app.server
        assert "token" in (info.value.hint or "")
        assert isinstance(configure(host="0.0.0.0", token=TOKEN).server, Server)

    def test_a_configured_token_guards_predictions_but_not_health(
        self, configure: Callable[..., Any]
    ) -> None:
        app = configure(token=TOKEN)
        register_model(app)
        server = app.server
        assert TOKEN not in repr(server.settings)
        server.start()
        try:
            assert wait_for(lambda: server.ready)
            assert self.health(server)
            rows = {f: [0.1] for f in FEATURES}
            assert self.predict(server, rows)[0] == 401
            assert self.predict(server, rows, token="wrong-token-0123456789")[0] == 401
            assert self.predict(server, rows, token=TOKEN)[0] == 200
        finally:
            server.stop(timeout=5)
