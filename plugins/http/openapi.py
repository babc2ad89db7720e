"""The OpenAPI 3.1 document of the ``http`` server, built from its route list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error", "kind"],
    "properties": {
        "error": {"type": "string"},
        "kind": {"type": "string"},
        "fields": {"type": "array", "items": {"type": "string"}},
        "hint": {"type": "string"},
    },
}
_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string"},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}
_BODIES: dict[str, dict[str, Any]] = {
    "infer": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "id": {"type": "string"},
                    "inputs": {"type": "array", "items": _TENSOR},
                },
            }
        }
    },
    "invocations": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": "exactly one of dataframe_split {columns, data}, "
                "dataframe_records [{...}], instances [{...}], inputs {column: [...]} or [{...}]",
            }
        }
    },
    "predict": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": 'records: [{"feature": value}], columns: {"feature": [values]}, '
                'or entities: [{"join_key": value, "request_feature": value}] (the other '
                "features are read from the online store; GET /model names the keys)",
            }
        },
        "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


def document(routes: Sequence[Any]) -> dict[str, Any]:
    """Every route, its parameters, body, and the errors it may answer."""
    from conveyor import __version__

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": f"{route.handler}_{len(paths)}",
            "responses": {
                "200": {"description": "OK"},
                "4XX": {
                    "description": "refused: the body names the field and the fix",
                    "content": {"application/json": {"schema": _ERROR}},
                },
            },
        }
        params = [p[1:-1] for p in route.path.split("/") if p.startswith("{")]
        if params:
            operation["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        if not route.public:
            operation["security"] = [{"bearer": []}]
        if route.handler in _BODIES:
            operation["requestBody"] = {"required": True, "content": _BODIES[route.handler]}
            operation["responses"]["503"] = {
                "description": "overloaded: retry after Retry-After seconds"
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Conveyor model server", "version": __version__},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
