"""One ``/metrics`` for several worker processes: each writes snapshots, any one merges.

With ``workers = N`` a scrape reaches whichever worker accepts the connection.  Each
worker writes its registry's text every :data:`SNAPSHOT_INTERVAL` seconds (and when it
stops) into a directory the parent server created for this run (mode 0700, removed at
stop), as ``<pid>.prom`` by write-then-rename; the worker that answers a scrape merges
its live metrics with the other workers' latest snapshots.  Samples with the same name
and labels are summed (``*_created`` timestamps: the earliest), so counters and
histograms read as one server's; ``conveyor_server_workers`` says how many processes
the answer covers.  Other workers' figures are at most one interval old.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("conveyor.plugins.http")
SNAPSHOT_INTERVAL = 1.0
_SUFFIX = ".prom"


class SnapshotWriter:
    """Writes one process's metrics into the shared directory until stopped."""

    def __init__(
        self, directory: str | os.PathLike[str], render: Any, interval: float = SNAPSHOT_INTERVAL
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / f"{os.getpid()}{_SUFFIX}"
        self._render, self._interval = render, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="conveyor-http-metrics")

    def start(self) -> None:
        self.write()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_bytes(self._render())
            os.replace(tmp, self.path)
        except OSError as exc:  # the directory went away: the server is stopping
            log.debug("metrics snapshot not written: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.write()

    def others(self) -> list[str]:
        """The other workers' latest snapshots (text)."""
        texts = []
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            if path != self.path:
                try:
                    texts.append(path.read_text())
                except OSError:
                    continue
        return texts


def merge(own: Iterable[Any], others: Iterable[str]) -> bytes:
    """Prometheus text of ``own`` (metric families) plus ``others`` (snapshot texts)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.metrics_core import Metric
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]]
    families = {}
    processes = 0
    for source in (own, *(text_string_to_metric_families(t) for t in others)):
        processes += 1
        for family in source:
            entry = families.setdefault(family.name, (family.documentation, family.type, {}))
            samples = entry[2]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in samples:
                    samples[key] = sample.value
                elif sample.name.endswith("_created"):
                    samples[key] = min(samples[key], sample.value)
                else:
                    samples[key] += sample.value

    class _Merged:
        def collect(self) -> Iterator[Any]:
            for name, (documentation, kind, samples) in families.items():
                metric = Metric(name, documentation, kind)
                for (sample_name, labels), value in samples.items():
                    metric.add_sample(sample_name, dict(labels), value)
                yield metric
            workers = Metric(
                "conveyor_server_workers",
                "Worker processes whose metrics this answer merges",
                "gauge",
            )
            workers.add_sample("conveyor_server_workers", {}, float(processes))
            yield workers

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged())
    return generate_latest(registry)
