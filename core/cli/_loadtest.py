"""The load generator behind ``conveyor loadtest``: bounded, keep-alive, stdlib asyncio.

Each of ``concurrency`` tasks holds one HTTP/1.1 connection and sends the same
prepared request until the request count or the duration is reached; latencies
are measured per request.  Kept dependency-free so it can run from CI anywhere.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from attrs import frozen

from conveyor.errors import ConveyorError

_V2_TYPES = {"bool": "BOOL", "float32": "FP32", "float64": "FP64"}


def fetch_signature(url: str, token: str | None) -> tuple[dict[str, Any], str]:
    """The served model's signature and name, from ``GET /model``."""
    request = urllib.request.Request(url.rstrip("/") + "/model")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ConveyorError(
            f"{url}/model answered {exc.code}",
            hint="pass --token (or set CONVEYOR_SERVER_TOKEN)"
            if exc.code == 401
            else "is this a Conveyor server?",
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ConveyorError(
            f"cannot reach {url}: {exc}", hint="start it with conveyor serve, and check the URL"
        ) from None
    return body["signature"], body["model"]


def _value(feature: dict[str, Any], i: int) -> Any:
    if feature.get("categories") is not None:
        cats = feature["categories"] or ["x"]
        return cats[i % len(cats)]
    if feature["dtype"] == "bool":
        return bool(i % 2)
    if feature["dtype"].startswith(("int", "uint")):
        return i % 7
    return round(((i * 2654435761) % 1000) / 250.0 - 2.0, 3)


def build_request(
    url: str, protocol: str, model: str, signature: dict[str, Any], rows: int, token: str | None
) -> bytes:
    """The raw HTTP request sent over and over: rows built from the signature."""
    features = signature["features"]
    columns = {f["name"]: [_value(f, i) for i in range(rows)] for f in features}
    payload: dict[str, Any]
    if protocol == "predict":
        path, payload = "/predict", {"columns": columns}
    elif protocol == "invocations":
        path, payload = "/invocations", {"inputs": columns}
    else:
        path = f"/v2/models/{model}/infer"
        payload = {
            "inputs": [
                {
                    "name": f["name"],
                    "shape": [rows],
                    "data": columns[f["name"]],
                    "datatype": "BYTES"
                    if f.get("categories") is not None
                    else _V2_TYPES.get(f["dtype"], "INT64"),
                }
                for f in features
            ]
        }
    body = json.dumps(payload).encode()
    parts = urlsplit(url)
    head = (
        f"POST {parts.path.rstrip('/')}{path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    )
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    return (head + "\r\n").encode() + body


@frozen(kw_only=True)
class LoadResult:
    """What a load test measured (latencies in seconds, sorted)."""

    requests: int
    errors: int
    seconds: float
    latencies: tuple[float, ...]
    statuses: dict[str, int]

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        return self.latencies[min(len(self.latencies) - 1, int(q * len(self.latencies)))]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": self.seconds,
            "rps": self.rps,
            "error_rate": self.error_rate,
            "statuses": self.statuses,
            "p50_ms": self.percentile(0.50) * 1e3,
            "p95_ms": self.percentile(0.95) * 1e3,
            "p99_ms": self.percentile(0.99) * 1e3,
        }

    def summary(self) -> str:
        d = self.to_dict()
        return (
            f"{d['requests']} requests in {d['seconds']:.2f} s: {d['rps']:.0f} req/s, "
            f"p50 {d['p50_ms']:.2f} ms, p95 {d['p95_ms']:.2f} ms, p99 {d['p99_ms']:.2f} ms, "
            f"errors {d['errors']} ({d['error_rate']:.2%})"
        )


@frozen(kw_only=True)
class Budget:
    """Limits a load test must stay within (``None``: not checked)."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    error_rate: float = 0.0
    min_rps: float | None = None

    @classmethod
    def parse(
        cls, latency: tuple[str, ...], *, error_rate: float = 0.0, min_rps: float | None = None
    ) -> Budget:
        """From ``--max-latency p99=5`` options (milliseconds)."""
        limits: dict[str, float] = {}
        for item in latency:
            key, _, value = item.partition("=")
            key = key.strip().lower()
            try:
                limits[f"{key}_ms"] = float(value)
            except ValueError:
                key = ""
            if key not in ("p50", "p95", "p99"):
                raise ConveyorError(
                    f"--max-latency {item!r} is not pNN=MS",
                    hint="e.g. --max-latency p99=5 (p50, p95 or p99)",
                )
        return cls(**limits, error_rate=error_rate, min_rps=min_rps)

    def missed(self, result: LoadResult) -> list[str]:
        d, out = result.to_dict(), []
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            limit = getattr(self, key)
            if limit is not None and not d[key] <= limit:
                out.append(f"{key[:-3]} {d[key]:.2f} ms > {limit:g} ms")
        if d["error_rate"] > self.error_rate:
            out.append(f"error rate {d['error_rate']:.2%} > {self.error_rate:.2%}")
        if self.min_rps is not None and d["rps"] < self.min_rps:
            out.append(f"throughput {d['rps']:.0f} req/s < {self.min_rps:g} req/s")
        return out


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _load(
    host: str, port: int, request: bytes, concurrency: int, duration: float, count: int | None
) -> LoadResult:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    sent = 0
    started = time.perf_counter()
    deadline = started + duration

    async def worker() -> None:
        nonlocal errors, sent
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while time.perf_counter() < deadline and (count is None or sent < count):
            sent += 1
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection(host, port)
                conn[1].write(request)
                status = await _read_response(conn[0])
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors += 1
                statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
                if conn is not None:
                    conn[1].close()
                conn = None
                continue
            latencies.append(time.perf_counter() - t0)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status >= 400:
                errors += 1
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return LoadResult(
        requests=len(latencies) + sum(v for k, v in statuses.items() if not k.isdigit()),
        errors=errors,
        seconds=seconds,
        latencies=tuple(sorted(latencies)),
        statuses=statuses,
    )


def run_load(
    url: str, request: bytes, *, concurrency: int, duration: float, count: int | None = None
) -> LoadResult:
    """Send ``request`` from ``concurrency`` connections until ``count`` requests or
    ``duration`` seconds, whichever comes first."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConveyorError(f"{url!r} is not an http:// URL", hint="e.g. http://127.0.0.1:8080")
    runner: Any = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    return runner(_load(parts.hostname, parts.port or 80, request, concurrency, duration, count))
