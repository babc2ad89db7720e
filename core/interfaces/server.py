"""The server interface: serve the model an alias points at, over some protocol.

A server is built like every backend, ``factory(app=app, config=config)`` from the
``[server]`` section.  The keys every server shares (model, alias, host, port,
token) are core's, read into :class:`~conveyor.server.ServerSettings` and checked
against the bind policy before any server is built; ``config`` holds only the
backend's own keys.  Predictions are logged through :mod:`conveyor.predictions`.
"""

from __future__ import annotations

import abc
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.server import ServerSettings


class Server(abc.ABC):
    """Serves a registered model: lifecycle only, the protocol is the plugin's.

    What an implementation must guarantee (``conveyor.testing.server`` checks it):

    * ``start()`` returns once the server listens (it does not block); from then
      on ``address`` is the base URL it listens on;
    * ``ready`` is true only while it can answer predictions with the version the
      configured alias points at;
    * ``stop(timeout)`` stops taking new requests, lets those in flight finish
      for up to ``timeout`` seconds, then releases the port; it is idempotent;
    * every route but health needs ``Authorization: Bearer <token>`` when a token
      is configured (core refuses a non-loopback host without one).

    Subclasses that keep the default constructor get ``self.app``,
    ``self.config`` (their own keys) and ``self.settings`` (the shared ones).
    """

    def __init__(self, *, app: Any, config: Any) -> None:
        from conveyor.server import server_settings

        self.app = app
        self.config = config
        self.settings: ServerSettings = server_settings(app.config)

    @abc.abstractmethod
    def start(self) -> None:
        """Load the model the alias points at and start listening (non-blocking)."""

    @abc.abstractmethod
    def stop(self, timeout: float = 10.0) -> None:
        """Drain in-flight requests for up to ``timeout`` seconds, then shut down."""

    @property
    @abc.abstractmethod
    def ready(self) -> bool:
        """Whether the server answers predictions now."""

    @property
    @abc.abstractmethod
    def address(self) -> str:
        """The base URL it listens on (``http://127.0.0.1:8080``); set by ``start``."""

    def serve_forever(self, stop: threading.Event | None = None) -> None:
        """Start, block until ``stop`` is set (or Ctrl-C), then stop: for the CLI."""
        stop = stop or threading.Event()
        self.start()
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def close(self) -> None:
        """``app.close()`` stops a server that is still running."""
        self.stop()
