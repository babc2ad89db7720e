"""Settings every model server shares, the bind policy core applies to all of them,
and what a process that only serves does once it is ready.

One ``[server]`` section holds two sets of keys.  Core reads the shared ones (the
fields of :class:`ServerSettings`) and checks them with :func:`check_bind`; the
rest (except ``backend``) is structured into the selected backend's own config
class, so a plugin declares only what is specific to it::

    [server]
    backend = "http"                          # shared: which server
    model = "churn"                           # shared: what it serves
    alias = "production"
    host = "0.0.0.0"
    port = 8080
    token = { env = "CONVEYOR_SERVER_TOKEN" } # required off loopback
    workers = 4                               # the http backend's own key
"""

from __future__ import annotations

import ipaddress
from typing import Any

from attrs import field, frozen

from conveyor.errors import ConfigError

SECTION = "server"
#: Shortest bearer token accepted: anything shorter is guessable.
MIN_TOKEN_LENGTH = 16
_TOKEN_HINT = (
    'set token = { env = "CONVEYOR_SERVER_TOKEN" } in [server] and export a '
    f"random value of {MIN_TOKEN_LENGTH}+ characters "
    "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
)


def _port(_instance: Any, _attribute: Any, value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"port must be between 0 and 65535 (0: any free port), got {value}")


def _nonempty(_instance: Any, attribute: Any, value: str) -> None:
    if not value.strip():
        raise ValueError(f"{attribute.name} must not be empty")


@frozen(kw_only=True)
class ServerSettings:
    """What every server needs, from ``[server]``.

    Attributes:
        model: the registered model to serve; ``None`` serves the only model the
            registry has (an error when it has several).
        alias: the alias whose version is served, followed when it moves.
        host: the address to bind; loopback unless a token is configured.
        port: the TCP port (0: any free port, read the real one from ``address``).
        token: the bearer token every route but health requires (a secret: never
            shown); ``None`` leaves a loopback server open to local users only.
    """

    model: str | None = None
    alias: str = field(default="production", validator=_nonempty)
    host: str = field(default="127.0.0.1", validator=_nonempty)
    port: int = field(default=8080, validator=_port)
    token: str | None = field(default=None, repr=False)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``).

    A host name other than ``localhost`` counts as reachable from elsewhere: it may
    resolve to any address, now or later.
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(settings: ServerSettings, *, where: str = "the config") -> None:
    """Refuse settings that would expose predictions to the network unauthenticated."""
    if settings.token is not None and len(settings.token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"{where}: [server] token is shorter than {MIN_TOKEN_LENGTH} characters",
            hint=_TOKEN_HINT,
        )
    if settings.token is None and not is_loopback(settings.host):
        raise ConfigError(
            f"{where}: [server] host = {settings.host!r} is reachable from other machines "
            "and no bearer token is configured",
            hint=f'{_TOKEN_HINT}, or bind host = "127.0.0.1"',
        )


def server_settings(config: Any) -> ServerSettings:
    """The shared ``[server]`` settings of ``config`` (a :class:`~conveyor.config.Config`),
    structured and checked against the bind policy."""
    from conveyor.config import core_keys, structure

    keys = core_keys("server")
    table = {k: v for k, v in config.section(SECTION).items() if k in keys}
    settings = structure(ServerSettings, table, section=SECTION, where=config.where)
    check_bind(settings, where=config.where)
    return settings


__all__ = [
    "MIN_TOKEN_LENGTH",
    "ServerSettings",
    "check_bind",
    "freeze_startup_objects",
    "is_loopback",
    "server_settings",
]


def freeze_startup_objects() -> None:
    """Move everything start-up made (modules, the loaded model, the app) out of the
    garbage collector's view: a serving process keeps it for its lifetime, and each
    full collection would otherwise re-scan it (~250k objects, tens of ms on this
    machine's loaded cores: the tail latency of every request queued meanwhile)."""
    import gc

    gc.collect()
    gc.freeze()
