"""Config class of the ``http`` server (attrs only: read when ``--help`` runs)."""

from __future__ import annotations

from typing import Any

from attrs import field, frozen


def _positive(_instance: Any, attribute: Any, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be greater than 0, got {value}")


def _one_of(*choices: str) -> Any:
    def check(_instance: Any, attribute: Any, value: str) -> None:
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {', '.join(choices)}, got {value!r}")

    return check


def _share(_instance: Any, attribute: Any, value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value}")


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    return tuple(str(v).strip().lower() for v in value)


@frozen(kw_only=True)
class HttpServerConfig:
    """The ``http`` backend's own keys in ``[server]``.

    Attributes:
        workers: processes sharing the port (each loads the model and follows the alias).
        max_body: largest request body in bytes; larger ones get 413 before being read.
        max_rows: most rows one request may carry (422 beyond).
        max_pending: requests in progress at once per worker; beyond it 503 + Retry-After.
        retry_after: seconds named in ``Retry-After`` when load is shed.
        read_timeout: seconds a client may take to send its body (408 after).
        keepalive_timeout: seconds an idle keep-alive connection stays open.
        poll_interval: seconds between reads of the registry's change feed.
        allowed_hosts: Host header values accepted (DNS-rebinding defence); empty:
            loopback names and the bind host (any host when bound to a wildcard).
        allowed_origins: browser ``Origin`` values allowed to POST; empty: none.
        log_predictions: append every prediction to the prediction log.
        challenger_alias: a second alias of the model to follow beside the served one
            (empty: none).
        challenger_mode: ``shadow`` (the challenger predicts every request after the
            answer is sent; logged and counted, never returned) or ``canary`` (it
            answers ``canary_share`` of the requests).
        canary_share: the share of request keys the canary answers, 0 to 1.
        canary_key_header: the request header whose value keeps a caller on one side
            (e.g. a user id; without it the request id decides, per request).
    """

    workers: int = field(default=1, validator=_positive)
    max_body: int = field(default=16 << 20, validator=_positive)
    max_rows: int = field(default=100_000, validator=_positive)
    max_pending: int = field(default=256, validator=_positive)
    retry_after: int = field(default=1, validator=_positive)
    read_timeout: float = field(default=10.0, validator=_positive)
    keepalive_timeout: float = field(default=5.0, validator=_positive)
    poll_interval: float = field(default=1.0, validator=_positive)
    allowed_hosts: tuple[str, ...] = field(default=(), converter=_names)
    allowed_origins: tuple[str, ...] = field(default=(), converter=_names)
    log_predictions: bool = True
    challenger_alias: str = ""
    challenger_mode: str = field(default="shadow", validator=_one_of("shadow", "canary"))
    canary_share: float = field(default=0.1, validator=_share)
    canary_key_header: str = field(default="x-conveyor-key", converter=lambda v: str(v).lower())
