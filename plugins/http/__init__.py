"""Bundled plugin ``http``: the model as an HTTP service (uvicorn, raw ASGI).

Kept light: it only declares the server backend; uvicorn, prometheus_client and
the model stack load when a server is built (``pip install 'conveyor[serve]'``).
"""

from __future__ import annotations

from typing import Any

from conveyor import hookimpl


@hookimpl
def register_servers(register: Any) -> None:
    """The ``http`` server: Open Inference Protocol v2, MLflow ``/invocations``, JSON and
    Arrow IPC, following the alias with verified hot-swaps."""
    register(
        "http",
        factory="conveyor.plugins.http.server:HttpServer",
        config_class="conveyor.plugins.http.config:HttpServerConfig",
        description="HTTP (uvicorn): v2 inference protocol, MLflow invocations, JSON, Arrow",
    )
