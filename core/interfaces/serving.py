"""The serving interface: serve the production model, hot-swap it, log predictions."""

from __future__ import annotations

import abc


class Server(abc.ABC):
    """Serves a registered model over a protocol.

    What an implementation must guarantee: it serves the version the configured
    alias points at, picks up a new version without a restart (after a canary
    load), validates inputs against the model's signature and logs predictions.
    """

    @abc.abstractmethod
    def serve(self, model: str, *, alias: str = "production") -> None:
        """Serve until stopped."""
