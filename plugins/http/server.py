"""The ``http`` server's lifecycle: uvicorn in a thread, or worker processes on one port.

With ``workers = 1`` the server runs in this process: uvicorn (uvloop and
httptools when installed) on its own thread and event loop.  With more, this
process binds the port and starts that many ``python -m conveyor.plugins.http.worker``
processes that inherit the listening socket; each loads the model and follows
the alias on its own, and each tells this process when it is ready.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.interfaces.server import Server
from conveyor.plugins.http.config import HttpServerConfig

log = logging.getLogger("conveyor.plugins.http")
READY_LINE = "conveyor-http-ready"


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (ConveyorError when it is taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConveyorError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="pick another --port (0: any free one), or stop what holds it",
        ) from None
    sock.listen(2048)
    return sock


class HttpServer(Server):
    """Serves the alias's version over HTTP; see :mod:`conveyor.plugins.http`."""

    config: HttpServerConfig

    def __init__(self, *, app: Any, config: HttpServerConfig) -> None:
        super().__init__(app=app, config=config)
        self._sock: socket.socket | None = None
        self._uvicorn: Any = None
        self._thread: threading.Thread | None = None
        self._server_app: Any = None
        self._workers: list[subprocess.Popen[str]] = []
        self._ready_workers: set[int] = set()
        self._lock = threading.Lock()
        self._metrics_dir: str | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._sock is not None:
            return
        sock = bind_socket(self.settings.host, self.settings.port)
        try:
            if self.config.workers == 1:
                self.start_on(sock)
            else:
                self._sock = sock
                self._spawn_workers(sock)
        except BaseException:
            self._sock = None
            sock.close()
            raise

    def start_on(self, sock: socket.socket, *, metrics_dir: str | None = None) -> None:
        """Load the model and serve on ``sock`` from a thread of this process; a worker
        of several shares its metrics through ``metrics_dir``."""
        import uvicorn

        from conveyor.models.lean import import_lightgbm_for_prediction

        import_lightgbm_for_prediction()  # before anything imports it: 1.6 s less here
        from conveyor.plugins.http.asgi import ServerApp
        from conveyor.plugins.http.follow import ModelSlot, only_model
        from conveyor.plugins.http.metrics import ServerMetrics
        from conveyor.predictions import PredictionLog

        name = self.settings.model or only_model(self.app)
        prediction_log = (
            PredictionLog.for_app(self.app, flush_interval=1.0)
            if self.config.log_predictions
            else None
        )
        metrics = ServerMetrics(prediction_log.stats if prediction_log else None)
        if metrics_dir is not None:
            metrics.share(metrics_dir)
        slot = ModelSlot(
            self.app,
            name,
            self.settings.alias,
            poll_interval=self.config.poll_interval,
            metrics=metrics,
        )
        slot.load_initial()
        challenger = None
        if self.config.challenger_alias:
            challenger = ModelSlot(
                self.app,
                name,
                self.config.challenger_alias,
                poll_interval=self.config.poll_interval,
                metrics=metrics,
            )
            challenger.load_initial(required=False)
        self._server_app = ServerApp(
            settings=self.settings,
            config=self.config,
            slot=slot,
            metrics=metrics,
            log_=prediction_log,
            challenger=challenger,
        )
        self._uvicorn = uvicorn.Server(
            uvicorn.Config(
                self._server_app,
                loop="auto",
                http="auto",
                lifespan="off",
                access_log=False,
                log_level="warning",
                server_header=False,
                date_header=False,
                timeout_keep_alive=int(self.config.keepalive_timeout) or 1,
                h11_max_incomplete_event_size=64 * 1024,
            )
        )
        self._sock = sock
        self._thread = threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [sock]}, daemon=True, name="conveyor-http"
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConveyorError(
                    "the HTTP server did not start", hint="run with --traceback; see the log above"
                )
            time.sleep(0.005)
        slot.start()
        if challenger is not None:
            challenger.start()

    def _spawn_workers(self, sock: socket.socket) -> None:
        from conveyor.plugins.http.follow import only_model

        sock.set_inheritable(True)
        config = self.app.config
        env = {
            **os.environ,
            "CONVEYOR_SERVER__WORKERS": "1",
            "CONVEYOR_SERVER__MODEL": _toml(self.settings.model or only_model(self.app)),
        }
        if config.file is not None:
            env["CONVEYOR_CONFIG"] = str(config.file)
        if config.profile:
            env["CONVEYOR_PROFILE"] = config.profile
        # one scrape sees every worker: they merge snapshots through a private directory
        self._metrics_dir = tempfile.mkdtemp(prefix="conveyor-metrics-")  # mode 0700
        for _ in range(self.config.workers):
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "conveyor.plugins.http.worker",
                    str(sock.fileno()),
                    self._metrics_dir,
                ],
                pass_fds=[sock.fileno()],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=config.root,
            )
            self._workers.append(proc)
            threading.Thread(target=self._watch_worker, args=(proc,), daemon=True).start()
        deadline = time.monotonic() + 120
        while not self.ready:
            if any(p.poll() is not None for p in self._workers) or time.monotonic() > deadline:
                self._stop_workers(5)
                raise ConveyorError(
                    "a server worker process failed to start",
                    hint="see its error above; try workers = 1 to debug",
                )
            time.sleep(0.02)

    def _watch_worker(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == READY_LINE:
                with self._lock:
                    self._ready_workers.add(proc.pid)

    def stop(self, timeout: float = 10.0) -> None:
        if self._workers:
            self._stop_workers(timeout)
        uv, thread = self._uvicorn, self._thread
        self._uvicorn = self._thread = None
        if uv is not None:
            uv.config.timeout_graceful_shutdown = timeout
            uv.should_exit = True
        if thread is not None:
            thread.join(timeout + 5)
        server_app, self._server_app = self._server_app, None
        if server_app is not None:
            server_app.slot.stop()
            if server_app.challenger is not None:
                server_app.challenger.stop()
            server_app.metrics.close()
            if server_app.prediction_log is not None:
                server_app.log_buffer.close()
                server_app.prediction_log.close(timeout)
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _stop_workers(self, timeout: float) -> None:
        workers, self._workers = self._workers, []
        for proc in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in workers:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with self._lock:
            self._ready_workers.clear()
        metrics_dir, self._metrics_dir = self._metrics_dir, None
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)

    # -- state ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        if self._workers:
            with self._lock:
                return all(p.poll() is None and p.pid in self._ready_workers for p in self._workers)
        app = self._server_app
        return (
            self._uvicorn is not None
            and self._uvicorn.started
            and app is not None
            and app.slot.current is not None
        )

    @property
    def address(self) -> str:
        if self._sock is None:
            raise ConveyorError("the server is not started", hint="call start() first")
        host, port = self._sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def slot(self) -> Any:
        """The in-process model slot (``None`` before start, or with several workers)."""
        return None if self._server_app is None else self._server_app.slot


def _toml(value: str) -> str:
    import json

    return json.dumps(value)  # a TOML basic string is a JSON string
