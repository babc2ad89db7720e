"""Prometheus metrics of one server process (``prometheus_client``, own registry)."""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: Bucket bounds of the prediction distribution (probabilities and most scores).
PREDICTION_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _Distribution:
    """Predicted values per model version as a histogram, counted a whole batch at once
    (one numpy pass per request instead of one ``observe`` per row)."""

    def __init__(self) -> None:
        import numpy as np

        self._np = np
        self._bounds = np.asarray(PREDICTION_BUCKETS)
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], list[Any]] = {}

    def add(self, model: str, version: str, values: Any) -> None:
        if len(values) <= 4:  # a few rows: plain Python beats numpy's per-call overhead
            self._add_few(model, version, values)
            return
        np = self._np
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        counts = np.bincount(
            np.searchsorted(self._bounds, values, side="left"), minlength=len(self._bounds) + 1
        )
        total = float(values.sum())
        with self._lock:
            entry = self._series.setdefault(
                (model, version), [np.zeros(len(self._bounds) + 1, np.int64), 0.0]
            )
            entry[0] += counts
            entry[1] += total

    def _add_few(self, model: str, version: str, values: Any) -> None:
        found = [
            (bisect.bisect_left(PREDICTION_BUCKETS, v), v)
            for v in values.tolist()
            if math.isfinite(v)
        ]
        with self._lock:
            entry = self._series.get((model, version))
            if entry is None:
                entry = self._series.setdefault(
                    (model, version), [self._np.zeros(len(self._bounds) + 1, self._np.int64), 0.0]
                )
            for index, value in found:
                entry[0][index] += 1
                entry[1] += value

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import HistogramMetricFamily

        family = HistogramMetricFamily(
            "conveyor_prediction_value",
            "Distribution of predicted values",
            labels=["model", "version"],
        )
        with self._lock:
            for (model, version), (counts, total) in self._series.items():
                cumulative = counts.cumsum()
                buckets = [
                    (str(b), float(c))
                    for b, c in zip(PREDICTION_BUCKETS, cumulative[:-1], strict=True)
                ]
                buckets.append(("+Inf", float(cumulative[-1])))
                family.add_metric([model, version], buckets, total)
        yield family


class ServerMetrics:
    """Every metric the server exports; ``render()`` is the ``/metrics`` body."""

    def __init__(self, log_stats: Callable[[], Any] | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "conveyor_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "conveyor_request_seconds",
            "Request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "conveyor_errors", "Refused or failed requests by kind", ["kind"], registry=r
        )
        self.rows = Counter(
            "conveyor_predictions",
            "Rows predicted per model version",
            ["model", "version"],
            registry=r,
        )
        self.queue = Gauge(
            "conveyor_queue_depth", "Requests in progress in this process", registry=r
        )
        self.swaps = Counter(
            "conveyor_model_swaps", "Model swaps by result (ok, failed)", ["result"], registry=r
        )
        self.served = Gauge(
            "conveyor_model_served",
            "1 for the model version answering",
            ["model", "version"],
            registry=r,
        )
        self.dropped = Gauge(
            "conveyor_prediction_log_dropped",
            "Prediction-log records dropped (queue full) since start",
            registry=r,
        )
        self.challenger = Counter(
            "conveyor_challenger_predictions",
            "Requests the challenger predicted, by mode and version",
            ["mode", "version"],
            registry=r,
        )
        self.distribution = _Distribution()
        r.register(self.distribution)
        self._log_stats = log_stats
        self._children: dict[tuple[str, int], Any] = {}
        self._latency: dict[str, Any] = {}
        self._shared: Any = None

    def request(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request (label children are cached: this is per request)."""
        key = (route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(route, str(status))
        child.inc()
        hist = self._latency.get(route)
        if hist is None:
            hist = self._latency[route] = self.latency.labels(route)
        hist.observe(seconds)

    def predicted(self, model: str, version: str, values: Any) -> None:
        self.rows.labels(model, version).inc(len(values))
        self.distribution.add(model, version, values)

    def swapped(self, old: tuple[str, str] | None, new: tuple[str, str]) -> None:
        if old is not None:
            self.served.remove(*old)
        self.served.labels(*new).set(1)

    def share(self, directory: str) -> None:
        """Merge with the other worker processes' metrics through ``directory``
        (see :mod:`.multiproc`); until :meth:`close`, snapshots are written there."""
        from conveyor.plugins.http.multiproc import SnapshotWriter

        self._shared = SnapshotWriter(directory, self._own)
        self._shared.start()

    def close(self) -> None:
        """Write the last snapshot (several workers) and stop writing."""
        shared, self._shared = self._shared, None
        if shared is not None:
            shared.stop()

    def _own(self) -> bytes:
        from prometheus_client import generate_latest

        if self._log_stats is not None:
            self.dropped.set(self._log_stats().dropped)
        return generate_latest(self.registry)

    def render(self) -> tuple[bytes, str]:
        """The ``/metrics`` body: this process's, or every worker's merged."""
        from prometheus_client import CONTENT_TYPE_LATEST

        shared = self._shared
        if shared is None:
            return self._own(), CONTENT_TYPE_LATEST
        from conveyor.plugins.http.multiproc import merge

        if self._log_stats is not None:
            self.dropped.set(self._log_stats().dropped)
        return merge(self.registry.collect(), shared.others()), CONTENT_TYPE_LATEST
