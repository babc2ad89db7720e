"""Point-in-time retrieval on the workers, partition by partition.

The point-in-time rule looks at one entity row at a time (its keys and time
against the view's rows), so the join of contiguous slices of the entity frame,
put back in order, is the join of the whole frame row for row.  Each worker joins
its slice with the project's own feature store
(:meth:`~conveyor.interfaces.FeatureStore.get_historical_features`) and stores the
answer as Parquet; the caller reads the answers back in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from conveyor.runs.work import project_of
from conveyor_dask.parts import part_count, read_part, scratch, worker_app, write_parts

if TYPE_CHECKING:
    import polars as pl


def join_part(
    project: dict[str, Any],
    part: dict[str, Any],
    features: list[str],
    *,
    timestamp: str,
    as_of: str | None,
    full_names: bool,
    out_key: str,
) -> dict[str, Any]:
    """Join one slice of entity rows on a worker; store the answer and return its key."""
    app = worker_app(project)
    entities = read_part(app, part)
    frame = app.features.get_historical_features(
        entities,
        features,
        timestamp=timestamp,
        full_names=full_names,
        as_of=None if as_of is None else datetime.fromisoformat(as_of),
    ).collect()
    info = app.artifacts.put_table(out_key, frame)
    return {"key": out_key, "sha256": info.sha256, "rows": frame.height}


def historical_features(
    client: Any,
    app: Any,
    entities: pl.DataFrame,
    features: Sequence[str],
    *,
    timestamp: str = "event_timestamp",
    as_of: datetime | None = None,
    full_names: bool = False,
    partitions: int = 0,
) -> pl.DataFrame:
    """``app.features.get_historical_features(...)``, computed slice by slice on the cluster.

    Args:
        client: a client of the cluster.
        app: the project (its artifact store must be reachable from every worker).
        entities: the entity rows (keys of every view, ``timestamp``).
        features: ``"view:feature"`` / ``"view:*"`` references.
        partitions: slices of the entity frame (0: from the workers and the size).
    """
    import polars as pl

    project = project_of(app)
    with scratch(app) as prefix:
        parts = write_parts(
            app, entities, f"{prefix}/entities", part_count(client, entities.height, partitions)
        )
        futures = [
            client.submit(
                join_part,
                project,
                part,
                list(features),
                timestamp=timestamp,
                as_of=None if as_of is None else as_of.isoformat(),
                full_names=full_names,
                pure=False,
                out_key=f"{prefix}/joined/part-{i:05d}.parquet",
            )
            for i, part in enumerate(parts)
        ]
        answers = client.gather(futures)
        return pl.concat([read_part(app, answer) for answer in answers], how="vertical")
