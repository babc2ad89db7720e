"""Live traffic for the demo: client threads replaying rows over HTTP, counting what answered.

Each client keeps one keep-alive connection (stdlib ``http.client``) and sends one
row per request to ``POST /predict`` with its own ``X-Request-Id``, so delayed
labels can later be joined to the prediction log by request id.  Every answer is
counted by the model version that gave it; anything but a 200 is a failure.
"""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from attrs import define, field


@define
class TrafficStats:
    """What the clients saw: requests answered per version, failures with their reasons."""

    sent: int = 0
    ok: int = 0
    failed: int = 0
    by_version: Counter[int] = field(factory=Counter)
    errors: Counter[str] = field(factory=Counter)
    #: per client, the versions in the order they answered (deduplicated runs)
    version_runs: list[list[int]] = field(factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "by_version": {str(k): v for k, v in sorted(self.by_version.items())},
            "errors": dict(self.errors),
            "versions_monotonic": all(run == sorted(run) for run in self.version_runs),
        }


class Traffic:
    """``clients`` threads sending ``rows`` (dicts keyed by request id) to ``address``.

    :meth:`send` replays a fixed list and waits for it; :meth:`start_loop` keeps
    replaying a list round after round (new request ids each round) until
    :meth:`stop`.  Stats accumulate over both.
    """

    def __init__(self, address: str, *, clients: int = 4, timeout: float = 30.0) -> None:
        parts = urlsplit(address)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.clients = clients
        self.timeout = timeout
        self.stats = TrafficStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def send(self, rows: Sequence[tuple[str, dict[str, Any]]]) -> float:
        """Send every ``(request_id, row)`` once, spread over the clients; the seconds taken."""
        began = time.perf_counter()
        threads = [
            threading.Thread(target=self._client, args=(iter(rows[i :: self.clients]),))
            for i in range(self.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - began

    def start_loop(self, rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Replay ``rows`` round after round from background clients until :meth:`stop`."""
        self._stop.clear()

        def rounds(part: Sequence[tuple[str, dict[str, Any]]]) -> Iterator[tuple[str, Any]]:
            n = 0
            while not self._stop.is_set():
                for rid, row in part:
                    if self._stop.is_set():
                        return
                    yield (rid if n == 0 else f"{rid}.{n}"), row
                n += 1

        self._threads = [
            threading.Thread(target=self._client, args=(rounds(rows[i :: self.clients]),))
            for i in range(self.clients)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def _client(self, rows: Iterator[tuple[str, dict[str, Any]]]) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        seen: list[int] = []
        with self._lock:
            self.stats.version_runs.append(seen)
        try:
            for rid, row in rows:
                body = json.dumps({"records": [_clean(row)]})
                headers = {"Content-Type": "application/json", "X-Request-Id": rid}
                version, error = None, None
                try:
                    conn.request("POST", "/predict", body=body, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                    if response.status == 200:
                        version = int(json.loads(payload)["version"])
                    else:
                        error = f"HTTP {response.status}"
                except (OSError, http.client.HTTPException) as exc:
                    error = type(exc).__name__
                    conn.close()
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                with self._lock:
                    self.stats.sent += 1
                    if version is None:
                        self.stats.failed += 1
                        self.stats.errors[error or "unknown"] += 1
                        continue
                    self.stats.ok += 1
                    self.stats.by_version[version] += 1
                    if not seen or seen[-1] != version:
                        seen.append(version)
        finally:
            conn.close()

    def answered_by(self, version: int) -> int:
        with self._lock:
            return self.stats.by_version[version]


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: a missing float goes as null, which the server reads as missing."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
