"""The ASGI application: routing, the guards every request passes, and prediction.

A raw ASGI callable (no framework on the hot path).  Order of the guards, each
answering a JSON error that names the problem and the fix: unknown route (404/405),
Host header (400), bearer token (401, constant-time compare), browser ``Origin``
(403), content type (415), declared size (413, before any byte is read), load
(503 + ``Retry-After``), read timeout (408), then the handler (400/404/422).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import zlib
from typing import TYPE_CHECKING, Any

from conveyor.models.errors import PredictionInputError
from conveyor.models.smallbatch import SMALL_ROWS
from conveyor.plugins.http import codecs
from conveyor.plugins.http.codecs import BadRequest
from conveyor.plugins.http.logbuffer import LogBuffer
from conveyor.plugins.http.routes import (
    ARROW_STREAM,
    ROUTES,
    Handlers,
    Request,
    Response,
    dumps,
    new_request_id,
)

if TYPE_CHECKING:
    from conveyor.plugins.http.config import HttpServerConfig
    from conveyor.plugins.http.follow import ModelSlot, Served
    from conveyor.plugins.http.metrics import ServerMetrics
    from conveyor.server import ServerSettings

log = logging.getLogger("conveyor.plugins.http")
_NEEDS_MODEL = frozenset(
    ("model_metadata", "model_ready", "model_info", "infer", "invocations", "predict")
)
_PREDICTS = frozenset(("infer", "invocations", "predict"))
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_WILDCARD = ("0.0.0.0", "::", "")


def _media_type(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value.split(b";", 1)[0].strip().decode("latin-1").lower()


def _host_name(value: bytes) -> str:
    host = value.decode("latin-1").strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _rows(columns: dict[str, Any]) -> int:
    """Rows of the first column (the paths check that the others agree)."""
    for values in columns.values():
        return len(values)
    return 0


def allowed_hosts(settings: ServerSettings, config: HttpServerConfig) -> frozenset[str] | None:
    """Host header names accepted; ``None`` accepts any (a wildcard bind with no list)."""
    if config.allowed_hosts:
        return frozenset(h.strip("[]") for h in config.allowed_hosts)
    host = settings.host.strip("[]").lower()
    if host in _WILDCARD:
        return None
    return frozenset((*_LOOPBACK, host))


class ServerApp:
    """One process's server: the model slot, metrics, prediction log and the ASGI app."""

    def __init__(
        self,
        *,
        settings: ServerSettings,
        config: HttpServerConfig,
        slot: ModelSlot,
        metrics: ServerMetrics,
        log_: Any = None,
        challenger: ModelSlot | None = None,
    ) -> None:
        self.settings, self.config = settings, config
        self.slot, self.metrics, self.prediction_log = slot, metrics, log_
        self.challenger = challenger
        self._canary = config.challenger_mode == "canary"
        self._canary_below = int(config.canary_share * (1 << 32))
        self._key_header = config.canary_key_header.encode()
        self._shadow_work: list[tuple[Any, str, Any]] = []
        self.log_buffer = None if log_ is None else LogBuffer(log_, self._log_dropped)
        self.handlers = Handlers(self)
        self._static: dict[tuple[str, str], Any] = {}
        self._templated: list[tuple[Any, list[str]]] = []
        self._paths: dict[str, set[str]] = {}
        for route in ROUTES:
            self._paths.setdefault(route.path, set()).add(route.method)
            if "{" in route.path:
                self._templated.append((route, route.path.strip("/").split("/")))
            else:
                self._static[(route.method, route.path)] = route
        self._fns = {r.handler: getattr(self.handlers, r.handler) for r in ROUTES}
        token = settings.token
        self._expected = None if token is None else b"Bearer " + token.encode()
        self._hosts = allowed_hosts(settings, config)
        self._origins = frozenset(config.allowed_origins)
        self.pending = 0
        self._small_rows = min(SMALL_ROWS, config.max_rows)

    # -- prediction ---------------------------------------------------------------------

    def predict_entities(
        self, served: Served, entities: Any, request_id: str, *, shadow: bool = False
    ) -> Any:
        """Predict for entity keys: the features read online (see :mod:`.entities`),
        each row logged with its entity key."""
        from conveyor.plugins.http.entities import entity_columns

        columns, keys = entity_columns(
            self.slot.app,
            served.entities,
            entities,
            served.model.predictor.names,
            self.config.max_rows,
        )
        return self.predict(
            served, columns, request_id, shadow=shadow, entity_keys=keys, entities=entities
        )

    def predict(
        self,
        served: Served,
        columns: Any,
        request_id: str,
        *,
        shadow: bool = False,
        entity_keys: list[str] | None = None,
        entities: Any = None,
    ) -> Any:
        """Validate ``columns`` against the signature, predict, count and log them.

        A few rows of plain columns are validated and encoded without polars
        (``Predictor.small_matrix``, same rules and errors); anything else, or what
        that path declines, goes through a polars table.
        """
        model = served.model
        names = model.predictor.names
        try:
            x = None
            if isinstance(columns, dict) and _rows(columns) <= self._small_rows:
                x = model.predictor.small_matrix(columns)
            if x is None:
                frame = codecs.to_frame(columns, self.config.max_rows)
                x = model.predictor.matrix(frame)
                features: Any = frame if tuple(frame.columns) == names else frame.select(names)
            else:
                features = {n: columns[n] for n in names}
        except PredictionInputError as exc:
            raise BadRequest(
                422,
                "signature_mismatch",
                exc.message,
                hint=exc.hint or "",
                fields=[f.subject for f in exc.findings],
            ) from None
        # One OpenMP thread for a few rows: waking a team costs more than it saves, and
        # far more when the cores are busy (measured ~50 us vs ~1-3 ms per call).
        rows = len(x)
        if rows == 1:  # LightGBM's single-row fast path: its settings are read once
            predictions = served.one_row.predict(x)
        elif rows == 0:
            predictions = x[:, 0]
        elif rows <= SMALL_ROWS:
            predictions = model.booster.predict(x, num_threads=1)
        else:
            predictions = model.booster.predict(x)
        name, version = served.label
        self.metrics.predicted(name, version, predictions)
        if self.prediction_log is None or not len(predictions):
            pass
        elif isinstance(features, dict) and self.log_buffer is not None:  # coalesced
            self.log_buffer.add(
                name, served.version, names, features, predictions, request_id, entity_keys
            )
        elif not self.prediction_log.append(
            model=name,
            version=served.version,
            features=features,
            predictions=predictions,
            request_ids=request_id,
            entity_keys=entity_keys,
        ):
            self._log_dropped()
        if shadow or (
            self._canary and self.challenger is not None and served is self.challenger.current
        ):
            self.metrics.challenger.labels("shadow" if shadow else "canary", version).inc()
        elif self.challenger is not None and not self._canary:
            # after the answer is sent; by entity, the challenger reads its own features
            self._shadow_work.append((columns, request_id, entities))
        return predictions

    def _log_dropped(self) -> None:
        self.metrics.errors.labels("prediction_log_dropped").inc()

    # -- the challenger -----------------------------------------------------------------

    def _pick(
        self, served: Served | None, params: dict[str, str], headers: dict[bytes, bytes], rid: str
    ) -> Served | None:
        """The version a prediction request goes to: in canary mode the challenger
        takes the share of request keys below ``canary_share`` (crc32 of the key:
        the same key lands on the same side in every worker), or a request naming
        its version."""
        other = self.challenger.current if self.challenger is not None else None
        if not self._canary or other is None or served is None or other.version == served.version:
            return served
        version = params.get("version")
        if version is not None:
            return other if version == str(other.version) else served
        key = headers.get(self._key_header) or rid.encode()
        return other if zlib.crc32(key) < self._canary_below else served

    def _run_shadow(self) -> None:
        """Predict the queued requests with the shadow challenger: logged and counted,
        never answered; a refusal or failure is counted, never raised."""
        work, self._shadow_work = self._shadow_work, []
        other = self.challenger.current if self.challenger is not None else None
        current = self.slot.current
        if other is None or (current is not None and other.version == current.version):
            return
        for columns, rid, entities in work:
            try:
                if entities is None:
                    self.predict(other, columns, rid, shadow=True)
                else:
                    self.predict_entities(other, entities, rid, shadow=True)
            except BadRequest:
                self.metrics.errors.labels("shadow_refused").inc()
            except Exception:
                log.exception("shadow prediction of v%s failed", other.version)
                self.metrics.errors.labels("shadow_failed").inc()

    # -- routing and guards -------------------------------------------------------------

    def _match(self, method: str, path: str) -> tuple[Any, dict[str, str]]:
        route = self._static.get((method, path))
        if route is not None:
            return route, {}
        parts = path.strip("/").split("/")
        allowed: set[str] = set()
        for candidate, pattern in self._templated:
            if len(pattern) != len(parts):
                continue
            params: dict[str, str] = {}
            for want, got in zip(pattern, parts, strict=True):
                if want.startswith("{"):
                    if not got:
                        break
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                if candidate.method == method:
                    return candidate, params
                allowed.add(candidate.method)
        allowed |= self._paths.get(path, set())
        if allowed:
            raise BadRequest(
                405,
                "method_not_allowed",
                f"{method} is not allowed on {path}",
                hint=f"use {', '.join(sorted(allowed))}",
                headers=[(b"allow", ", ".join(sorted(allowed)).encode())],
            )
        raise BadRequest(
            404, "not_found", f"no route {path}", hint="GET /openapi.json lists every route"
        )

    def _guard(self, route: Any, headers: dict[bytes, bytes]) -> None:
        if self._hosts is not None:
            host = headers.get(b"host")
            if host is None or _host_name(host) not in self._hosts:
                raise BadRequest(
                    400,
                    "host_not_allowed",
                    "the Host header names a host this server does not answer for",
                    fields=["Host"],
                    hint="call it by its bind address, or add the name to "
                    "allowed_hosts in [server]",
                )
        if not route.public and self._expected is not None:
            sent = headers.get(b"authorization", b"")
            if not hmac.compare_digest(sent, self._expected):
                raise BadRequest(
                    401,
                    "unauthorized",
                    "missing or wrong bearer token",
                    fields=["Authorization"],
                    hint="send Authorization: Bearer <the [server] token>",
                    headers=[(b"www-authenticate", b"Bearer")],
                )
        if route.method != "POST":
            return
        origin = headers.get(b"origin")
        if origin is not None and origin.decode("latin-1").lower() not in self._origins:
            raise BadRequest(
                403,
                "origin_not_allowed",
                "requests from browser pages of other origins are refused",
                fields=["Origin"],
                hint="call the API from a server, or list the origin in "
                "allowed_origins in [server]",
            )
        media = _media_type(headers.get(b"content-type"))
        accepted = {
            "json": ("application/json",),
            "arrow": ("application/json", ARROW_STREAM),
            "v2": ("application/json", "application/octet-stream", None),
        }[route.body]
        if media not in accepted:
            raise BadRequest(
                415,
                "unsupported_media_type",
                f"content type {media or '(none)'} is not accepted here",
                fields=["Content-Type"],
                hint=f"send Content-Type: {' or '.join(a for a in accepted if a)}",
            )
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise BadRequest(
                    400,
                    "malformed_header",
                    "Content-Length is not a number",
                    fields=["Content-Length"],
                ) from None
            if size > self.config.max_body:
                raise self._too_large()
        if self.pending >= self.config.max_pending:
            self.metrics.errors.labels("overloaded").inc()
            raise BadRequest(
                503,
                "overloaded",
                f"{self.pending} requests are in progress, the most this server queues",
                hint="retry after the delay in Retry-After, or add workers",
                headers=[(b"retry-after", str(self.config.retry_after).encode())],
            )

    def _too_large(self) -> BadRequest:
        return BadRequest(
            413,
            "body_too_large",
            f"the body is larger than {self.config.max_body} bytes",
            fields=["Content-Length"],
            hint="split the batch, or raise max_body in [server]",
        )

    async def _read_body(self, receive: Any) -> bytes:
        limit, chunks, size = self.config.max_body, [], 0
        task = asyncio.current_task()
        timed_out = False

        def expire() -> None:
            nonlocal timed_out
            timed_out = True
            if task is not None:
                task.cancel()

        timer = asyncio.get_running_loop().call_later(self.config.read_timeout, expire)
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise BadRequest(400, "disconnected", "the client went away")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise self._too_large()
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        except asyncio.CancelledError:
            if not timed_out:
                raise
            raise BadRequest(
                408,
                "read_timeout",
                f"the body took longer than {self.config.read_timeout:g} s to arrive",
                hint="send the body promptly",
            ) from None
        finally:
            timer.cancel()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        label = "unmatched"
        headers: dict[bytes, bytes] = dict(scope["headers"])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")
        if not (0 < len(rid) <= 64 and rid.isprintable()):
            rid = new_request_id()
        served = self.slot.current
        try:
            route, params = self._match(scope["method"], scope["path"])
            label = route.path
            self._guard(route, headers)
            if self.challenger is not None and route.handler in _PREDICTS:
                served = self._pick(served, params, headers, rid)
            if route.handler in _NEEDS_MODEL and served is None:
                raise BadRequest(
                    503,
                    "not_ready",
                    "no model is loaded yet",
                    hint="wait for /v2/health/ready",
                    headers=[(b"retry-after", b"1")],
                )
            content_type = _media_type(headers.get(b"content-type")) or ""
            request = Request(params, b"", content_type, headers, served, rid)  # type: ignore[arg-type]
            fn = self._fns[route.handler]
            if route.method == "POST":
                self.pending += 1
                self.metrics.queue.inc()
                try:
                    request.body = await self._read_body(receive)
                    response = fn(request)
                finally:
                    self.pending -= 1
                    self.metrics.queue.dec()
            else:
                response = fn(request)
        except BadRequest as exc:
            self.metrics.errors.labels(exc.kind).inc()
            response = Response(
                exc.status,
                dumps(
                    {"error": exc.message, "kind": exc.kind, "fields": exc.fields, "hint": exc.hint}
                ),
                headers=tuple(exc.headers),
            )
        except Exception:
            log.exception("internal error on %s %s", scope["method"], scope["path"])
            self.metrics.errors.labels("internal").inc()
            response = Response(
                500,
                dumps(
                    {
                        "error": "internal server error",
                        "kind": "internal",
                        "fields": [],
                        "hint": "see the server's log",
                    }
                ),
            )
        out = [
            (b"content-type", response.content_type),
            (b"content-length", str(len(response.body)).encode()),
            (b"x-request-id", rid.encode()),
            *response.headers,
        ]
        if served is not None:
            out.extend(served.headers)
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        await send({"type": "http.response.body", "body": response.body})
        self.metrics.request(label, response.status, time.perf_counter() - started)
        if self._shadow_work:
            self._run_shadow()
