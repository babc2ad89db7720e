"""Tables split into Parquet parts in the artifact store, for tasks on the workers.

Only keys and hashes travel in a task; each worker reads its part from, and writes
its answer to, the project's artifact store (a local folder on one machine, S3 on
a cluster), opened from the project's root, config file and profile.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

SCRATCH = "scratch/conveyor-dask"


@functools.cache
def project_app(root: str, profile: str | None, config_file: str | None) -> Any:
    """The project's app in a worker process (opened once per project)."""
    from conveyor.app import Conveyor

    return Conveyor.load(config_file, profile=profile, cwd=root)


def worker_app(project: dict[str, Any]) -> Any:
    """:func:`project_app` of a project description (:func:`conveyor.runs.work.project_of`)."""
    return project_app(project["root"], project.get("profile"), project.get("config_file"))


def part_count(client: Any, rows: int, requested: int, *, min_rows: int = 50_000) -> int:
    """How many parts: ``requested``, else at least one per worker, more for big tables."""
    if requested > 0:
        return requested
    workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    return max(workers, min(4 * workers, rows // (min_rows * workers) or 1))


def bounds(rows: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ``(offset, length)`` row ranges covering ``rows`` in order."""
    parts = max(1, min(parts, rows)) if rows else 1
    step, extra = divmod(rows, parts)
    out, offset = [], 0
    for i in range(parts):
        length = step + (1 if i < extra else 0)
        out.append((offset, length))
        offset += length
    return out


@contextmanager
def scratch(app: Any) -> Iterator[str]:
    """A fresh key prefix for one job's parts, deleted afterwards."""
    prefix = f"{SCRATCH}/{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        for info in list(app.artifacts.list(prefix + "/")):
            app.artifacts.delete(info.key)


def write_parts(app: Any, frame: pl.DataFrame, prefix: str, parts: int) -> list[dict[str, Any]]:
    """``frame`` as ordered Parquet parts under ``prefix``: ``[{key, sha256, rows}]``."""
    written = []
    for i, (offset, length) in enumerate(bounds(frame.height, parts)):
        key = f"{prefix}/part-{i:05d}.parquet"
        info = app.artifacts.put_table(key, frame.slice(offset, length))
        written.append({"key": key, "sha256": info.sha256, "rows": length})
    return written


def read_part(app: Any, part: dict[str, Any]) -> pl.DataFrame:
    """One part back, its SHA-256 checked."""
    return app.artifacts.scan_table(part["key"], sha256=part["sha256"]).collect()
