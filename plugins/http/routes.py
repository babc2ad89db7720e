"""The routes of the ``http`` server: what each answers, from a parsed request.

Every handler is a plain function ``(Request) -> Response``; guards (host, token,
origin, content type, size, load) run before it in :mod:`.asgi`.  :data:`ROUTES`
is the one list of routes: the dispatcher, the OpenAPI document and the route
coverage test all read it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from attrs import define, frozen

from conveyor.plugins.http import codecs
from conveyor.plugins.http.codecs import BadRequest

if TYPE_CHECKING:
    from conveyor.plugins.http.follow import Served

JSON = b"application/json"
ARROW_STREAM = "application/vnd.apache.arrow.stream"


@define(slots=True)
class Request:
    """What a handler sees: the route's path parameters, body and chosen headers."""

    path_params: dict[str, str]
    body: bytes
    content_type: str
    headers: dict[bytes, bytes]
    served: Served
    request_id: str


@frozen
class Response:
    status: int
    body: bytes
    content_type: bytes = JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()


@frozen(kw_only=True)
class Route:
    """One route: ``path`` may hold ``{name}`` and ``{version}`` segments.

    ``public`` routes need no token (health only); ``body`` says which content types
    a POST accepts (``json``, ``arrow``, ``v2`` = JSON or the v2 binary extension).
    """

    method: str
    path: str
    handler: str
    summary: str
    public: bool = False
    body: str | None = None


ROUTES: tuple[Route, ...] = (
    Route(
        method="GET",
        path="/health",
        handler="health",
        public=True,
        summary="Liveness and readiness (200 when ready, 503 while not)",
    ),
    Route(
        method="GET",
        path="/ping",
        handler="health",
        public=True,
        summary="MLflow scoring-server health check",
    ),
    Route(
        method="GET", path="/v2/health/live", handler="live", public=True, summary="v2: server live"
    ),
    Route(
        method="GET",
        path="/v2/health/ready",
        handler="ready",
        public=True,
        summary="v2: server ready (names the last failed swap, if any)",
    ),
    Route(method="GET", path="/v2", handler="server_metadata", summary="v2: server metadata"),
    Route(
        method="GET",
        path="/v2/models/{name}",
        handler="model_metadata",
        summary="v2: model metadata (inputs with datatypes, outputs)",
    ),
    Route(
        method="GET",
        path="/v2/models/{name}/versions/{version}",
        handler="model_metadata",
        summary="v2: model metadata of a version",
    ),
    Route(
        method="GET",
        path="/v2/models/{name}/ready",
        handler="model_ready",
        summary="v2: model ready",
    ),
    Route(
        method="GET",
        path="/v2/models/{name}/versions/{version}/ready",
        handler="model_ready",
        summary="v2: model version ready",
    ),
    Route(
        method="POST",
        path="/v2/models/{name}/infer",
        handler="infer",
        body="v2",
        summary="v2: inference with named input tensors",
    ),
    Route(
        method="POST",
        path="/v2/models/{name}/versions/{version}/infer",
        handler="infer",
        body="v2",
        summary="v2: inference on a given version",
    ),
    Route(
        method="POST",
        path="/invocations",
        handler="invocations",
        body="json",
        summary="MLflow scoring: dataframe_split, dataframe_records, instances, inputs",
    ),
    Route(
        method="POST",
        path="/predict",
        handler="predict",
        body="arrow",
        summary='JSON {"records": [...]}, {"columns": {...}} or {"entities": [{key: value}]} '
        "(features read from the online store), or an Arrow IPC stream",
    ),
    Route(
        method="GET",
        path="/model",
        handler="model_info",
        summary="The served model: name, version, signature",
    ),
    Route(method="GET", path="/metrics", handler="metrics", summary="Prometheus metrics"),
    Route(
        method="GET",
        path="/openapi.json",
        handler="openapi",
        summary="This API as an OpenAPI 3.1 document",
    ),
)


def dumps(value: Any) -> bytes:
    import orjson

    # numpy arrays serialize natively; NaN/inf become null (no NaN token in JSON)
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def new_request_id() -> str:
    # 128 random bits, as uuid4 (less its 6 fixed bits) at a fifth of its cost
    return os.urandom(16).hex()


class Handlers:
    """The route handlers of one server process."""

    def __init__(self, server: Any) -> None:
        self.server = server  # the ServerApp: slot, metrics, log, config
        self.started = time.time()

    # -- health and metadata ------------------------------------------------------------

    def _health_body(self) -> dict[str, Any]:
        served = self.server.slot.current
        body: dict[str, Any] = {"ready": served is not None}
        if served is not None:
            body.update(model=served.name, version=served.version)
        if self.server.slot.last_error:
            body["last_swap_error"] = self.server.slot.last_error
        return body

    def health(self, _request: Request | None) -> Response:
        body = self._health_body()
        return Response(200 if body["ready"] else 503, dumps(body))

    live = health

    def ready(self, request: Request | None) -> Response:
        return self.health(request)

    def server_metadata(self, _request: Request) -> Response:
        from conveyor import __version__

        return Response(
            200,
            dumps(
                {"name": "conveyor", "version": __version__, "extensions": ["binary_tensor_data"]}
            ),
        )

    def _check_model(self, request: Request) -> Served:
        served = request.served
        name = request.path_params.get("name")
        version = request.path_params.get("version")
        if name != served.name:
            raise BadRequest(
                404,
                "unknown_model",
                f"model {name!r} is not served here",
                hint=f"this server serves {served.name!r}",
                fields=["name"],
            )
        if version is not None and version != str(served.version):
            raise BadRequest(
                404,
                "unknown_version",
                f"version {version} of {name!r} is not served here (v{served.version} is)",
                hint=f"use /v2/models/{name} or version {served.version}",
                fields=["version"],
            )
        return served

    def model_metadata(self, request: Request) -> Response:
        served = self._check_model(request)
        features = served.model.signature.features
        return Response(
            200,
            dumps(
                {
                    "name": served.name,
                    "versions": [str(served.version)],
                    "platform": "lightgbm",
                    "inputs": [
                        {"name": f.name, "datatype": codecs.TO_V2[f.dtype], "shape": [-1]}
                        for f in features
                    ],
                    "outputs": [{"name": "prediction", "datatype": "FP64", "shape": [-1]}],
                }
            ),
        )

    def model_ready(self, request: Request) -> Response:
        served = self._check_model(request)
        return Response(200, dumps({"name": served.name, "ready": True}))

    def model_info(self, request: Request) -> Response:
        served = request.served
        return Response(
            200,
            dumps(
                {
                    "model": served.name,
                    "version": served.version,
                    "signature": served.model.signature.to_dict(),
                    "entities": (
                        served.entities.describe()
                        if served.entities is not None
                        else {"available": False, "reason": "registered without features"}
                    ),
                }
            ),
        )

    def metrics(self, _request: Request) -> Response:
        body, content_type = self.server.metrics.render()
        return Response(200, body, content_type.encode())

    def openapi(self, _request: Request) -> Response:
        from conveyor.plugins.http.openapi import document

        return Response(200, dumps(document(ROUTES)))

    # -- predictions --------------------------------------------------------------------

    def infer(self, request: Request) -> Response:
        served = self._check_model(request)
        names = served.model.predictor.names
        length = request.headers.get(b"inference-header-content-length")
        if length is not None:
            try:
                split = int(length)
            except ValueError:
                split = -1
            if not 0 <= split <= len(request.body):
                raise BadRequest(
                    400,
                    "malformed_header",
                    "Inference-Header-Content-Length is not a length within the body",
                    fields=["Inference-Header-Content-Length"],
                )
            header = codecs.parse_json(request.body[:split])
            binary = request.body[split:]
        else:
            header, binary = codecs.parse_json(request.body), b""
        columns, given_id = codecs.v2_columns(header, binary, names)
        rid = given_id if isinstance(given_id, str) and given_id else request.request_id
        predictions = self.server.predict(served, columns, rid)
        return Response(
            200,
            dumps(
                {
                    "model_name": served.name,
                    "model_version": str(served.version),
                    "id": rid,
                    "outputs": [
                        {
                            "name": "prediction",
                            "datatype": "FP64",
                            "shape": [len(predictions)],
                            "data": predictions,
                        }
                    ],
                }
            ),
        )

    def invocations(self, request: Request) -> Response:
        served = request.served
        payload = codecs.parse_json(request.body)
        columns = codecs.mlflow_columns(payload, served.model.predictor.names)
        predictions = self.server.predict(served, columns, request.request_id)
        return Response(
            200,
            dumps({"predictions": predictions, "model": served.name, "version": served.version}),
        )

    def predict(self, request: Request) -> Response:
        served = request.served
        if request.content_type == ARROW_STREAM:
            columns: Any = codecs.arrow_columns(request.body)
            predictions = self.server.predict(served, columns, request.request_id)
        else:
            payload = codecs.parse_json(request.body)
            if isinstance(payload, dict) and "entities" in payload:
                predictions = self.server.predict_entities(
                    served, payload["entities"], request.request_id
                )
            else:
                columns = codecs.simple_columns(payload, served.model.predictor.names)
                predictions = self.server.predict(served, columns, request.request_id)
        return Response(
            200,
            dumps(
                {
                    "model": served.name,
                    "version": served.version,
                    "request_id": request.request_id,
                    "predictions": predictions,
                }
            ),
        )


HandlerFn = Callable[[Request], Response]
