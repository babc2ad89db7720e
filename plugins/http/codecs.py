"""Request bodies -> feature columns, for every protocol the server speaks.

Each parser returns ``{column: values}`` (lists or numpy arrays) and raises
:class:`BadRequest` naming the field and the fix; the signature checks (types,
nullability, infinities) are the model's, done afterwards on the table.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

Columns = dict[str, Any]

#: Open Inference Protocol v2 datatypes -> numpy dtype names (BYTES: strings).
V2_DTYPES = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
#: Conveyor dtype vocabulary -> v2 datatype (model metadata).
TO_V2 = {
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "float32": "FP32",
    "float64": "FP64",
    "string": "BYTES",
    "category": "BYTES",
    "date": "BYTES",
    "datetime": "BYTES",
}


class BadRequest(Exception):
    """A request the server refuses: HTTP status, error kind, message, field and fix."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        hint: str = "",
        fields: Sequence[str] = (),
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.hint, self.fields, self.headers = hint, list(fields), list(headers)


def invalid(message: str, *, field: str = "", hint: str = "") -> BadRequest:
    """A 422: the body parsed but does not say what a prediction needs."""
    return BadRequest(422, "invalid_payload", message, hint=hint, fields=[field] if field else [])


def parse_json(body: bytes) -> Any:
    import orjson

    if not body:
        raise BadRequest(
            400,
            "empty_body",
            "the request has no body",
            hint="send a JSON object (see /openapi.json)",
        )
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            400,
            "malformed_json",
            f"the body is not valid JSON: {exc}",
            hint="send a JSON object (see /openapi.json)",
        ) from None


def _object(payload: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(payload, dict):
        raise invalid(
            f"{what} must be a JSON object, not {type(payload).__name__}",
            hint="see /openapi.json for the body of each route",
        )
    return payload


def records_to_columns(records: Any, names: Sequence[str], *, field: str) -> Columns:
    """``[{feature: value}, ...]`` -> columns of the signature's features (a feature
    absent from every record stays absent, so it is reported as missing)."""
    if not isinstance(records, list):
        raise invalid(
            f"{field} must be a list of objects", field=field, hint='e.g. [{"f0": 1.5, "f1": "a"}]'
        )
    for i, row in enumerate(records):
        if not isinstance(row, dict):
            raise invalid(
                f"{field}[{i}] must be an object of feature: value",
                field=f"{field}[{i}]",
                hint='e.g. {"f0": 1.5}',
            )
    seen = set().union(*records) if records else set()
    return {n: [row.get(n) for row in records] for n in names if n in seen}


def columns_to_columns(columns: Any, *, field: str) -> Columns:
    """``{feature: [values]}``, checked for shape."""
    columns = _object(columns, field)
    length = None
    for name, values in columns.items():
        if not isinstance(values, list):
            raise invalid(
                f"{field}.{name} must be a list of values",
                field=name,
                hint='e.g. {"f0": [1.5, 2.0]}',
            )
        if length is not None and len(values) != length:
            raise invalid(
                f"{field}.{name} has {len(values)} values, other columns {length}",
                field=name,
                hint="send the same number of values per column",
            )
        length = len(values)
    return dict(columns)


def split_to_columns(split: Any, *, field: str) -> Columns:
    """pandas ``orient="split"``: ``{"columns": [...], "data": [[...], ...]}``."""
    split = _object(split, field)
    cols, data = split.get("columns"), split.get("data")
    if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
        raise invalid(f"{field}.columns must be a list of feature names", field=f"{field}.columns")
    if not isinstance(data, list) or not all(
        isinstance(r, list) and len(r) == len(cols) for r in data
    ):
        raise invalid(
            f"{field}.data must be a list of rows of {len(cols)} values",
            field=f"{field}.data",
            hint="one value per column in each row",
        )
    return {c: [row[i] for row in data] for i, c in enumerate(cols)}


def simple_columns(payload: Any, names: Sequence[str]) -> Columns:
    """``/predict`` JSON: ``{"records": [...]}`` or ``{"columns": {...}}``."""
    payload = _object(payload, "the body")
    if "records" in payload:
        return records_to_columns(payload["records"], names, field="records")
    if "columns" in payload:
        return columns_to_columns(payload["columns"], field="columns")
    raise invalid(
        "the body has neither 'records' nor 'columns'",
        field="records",
        hint='send {"records": [{"f0": 1.5}]} or {"columns": {"f0": [1.5]}}',
    )


def mlflow_columns(payload: Any, names: Sequence[str]) -> Columns:
    """MLflow scoring server JSON: ``dataframe_split``, ``dataframe_records``,
    ``instances`` or ``inputs`` (records, or columns)."""
    payload = _object(payload, "the body")
    keys = [
        k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in payload
    ]
    if len(keys) != 1:
        raise invalid(
            "the body must have exactly one of dataframe_split, dataframe_records, "
            f"instances, inputs (found {keys or 'none'})",
            field="dataframe_split",
            hint='e.g. {"dataframe_split": {"columns": ["f0"], "data": [[1.5]]}}',
        )
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        return split_to_columns(value, field=key)
    if isinstance(value, dict):
        return columns_to_columns(value, field=key)
    return records_to_columns(value, names, field=key)


def arrow_columns(body: bytes) -> pl.DataFrame:
    """An Arrow IPC stream body -> a polars table (types travel with the data)."""
    import polars as pl
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(body).read_all()
        return pl.from_arrow(table)  # type: ignore[return-value]
    except (pa.ArrowException, ValueError, TypeError, OSError) as exc:
        raise BadRequest(
            400,
            "malformed_arrow",
            f"the body is not an Arrow IPC stream: {exc}",
            hint="write it with pyarrow.ipc.new_stream (or polars DataFrame.write_ipc_stream)",
        ) from None


# -- Open Inference Protocol v2 -----------------------------------------------------------


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        out: list[Any] = []
        for item in data:
            out.extend(_flatten(item))
        return out
    return data


def _bytes_elements(raw: bytes, field: str) -> list[str]:
    """Triton's binary BYTES: each element a 4-byte little-endian length, then bytes."""
    out, at = [], 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise invalid(f"{field}: truncated BYTES element", field=field)
        (size,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + size > len(raw):
            raise invalid(f"{field}: truncated BYTES element", field=field)
        out.append(raw[at : at + size].decode("utf-8", "replace"))
        at += size
    return out


def v2_columns(header: Any, binary: bytes, names: Sequence[str]) -> tuple[Columns, Any]:
    """A v2 ``infer`` request -> ``(columns, request id)``.

    One input tensor per feature (shape ``[n]`` or ``[n, 1]``), or one ``[n, k]``
    tensor whose columns are the features in signature order.  Binary tensor data
    (``parameters.binary_data_size``, the Triton extension) is read from ``binary``.
    """
    import numpy as np

    header = _object(header, "the body")
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise invalid(
            "'inputs' must be a non-empty list of tensors",
            field="inputs",
            hint='e.g. {"inputs": [{"name": "f0", "shape": [1], "datatype": "FP64", '
            '"data": [1.5]}]}',
        )
    columns: Columns = {}
    offset = 0
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}]"
        tensor = _object(tensor, where)
        name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
        if not isinstance(name, str) or not name:
            raise invalid(f"{where}.name must be a feature name", field=f"{where}.name")
        where = name
        if (
            not isinstance(shape, list)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            or not 1 <= len(shape) <= 2
        ):
            raise invalid(f"input {name!r}: shape must be [n] or [n, k]", field=name)
        dtype = V2_DTYPES.get(datatype) if isinstance(datatype, str) else None
        if dtype is None:
            raise invalid(
                f"input {name!r}: unknown datatype {datatype!r}",
                field=name,
                hint=f"one of {', '.join(V2_DTYPES)}",
            )
        count = math.prod(shape)
        params = tensor.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        try:
            if size is not None:
                if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                    raise invalid(
                        f"input {name!r}: binary_data_size {size!r} runs past the body", field=name
                    )
                raw = binary[offset : offset + size]
                offset += size
                values: Any = (
                    np.array(_bytes_elements(raw, name), dtype=object)
                    if dtype == "object"
                    else np.frombuffer(raw, dtype=dtype)
                )
            else:
                values = _flatten(tensor.get("data"))
                if dtype != "object":
                    values = np.asarray(values, dtype=dtype)
                    if values.ndim != 1:
                        raise ValueError("data must be numbers")
        except (ValueError, TypeError, OverflowError) as exc:
            raise invalid(
                f"input {name!r}: data does not fit datatype {datatype}: {exc}",
                field=name,
                hint="send numbers (or strings for BYTES)",
            ) from None
        if len(values) != count:
            raise invalid(
                f"input {name!r}: shape {shape} needs {count} values, got {len(values)}", field=name
            )
        if len(shape) == 2 and shape[1] != 1:
            if name in names or shape[1] != len(names):
                raise invalid(
                    f"input {name!r}: shape {shape} must be [n] per feature, or "
                    f"[n, {len(names)}] for all features in signature order",
                    field=name,
                )
            matrix = np.asarray(values).reshape(shape)
            for j, feature in enumerate(names):
                columns[feature] = matrix[:, j]
        else:
            columns[name] = values if dtype != "object" else list(values)
    return columns, header.get("id")


def to_frame(columns: Columns | pl.DataFrame, max_rows: int) -> pl.DataFrame:
    """Columns -> a polars table; a column polars cannot type is a 422 naming it."""
    import polars as pl

    if isinstance(columns, pl.DataFrame):
        frame = columns
    else:
        series = []
        for name, values in columns.items():
            try:
                series.append(pl.Series(name, values))
            except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError) as exc:
                raise invalid(
                    f"feature {name!r} mixes types or holds values no column type "
                    f"fits: {str(exc).splitlines()[0]}",
                    field=name,
                    hint="send one type per feature: numbers, or strings for "
                    "categories, null for missing",
                ) from None
        lengths = {len(s) for s in series}
        if len(lengths) > 1:
            raise invalid(
                "feature columns have different lengths",
                hint="send one value per row for every feature",
            )
        frame = pl.DataFrame(series)
    if frame.height > max_rows:
        raise invalid(
            f"the request has {frame.height} rows; at most {max_rows} are served",
            hint="split the batch, or raise max_rows in [server]",
        )
    return frame
