"""Reuse and recording: which earlier execution a step may reuse, how outputs are recorded.

Part of :mod:`conveyor.runs.runner`: an execution is reused only while every output
it recorded is still stored unchanged, and each output of a finished attempt is
recorded in the metadata store with the fingerprint its consumers' cache keys use.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from conveyor.errors import NotFoundError
from conveyor.pipeline import Node, is_transient, transient_fingerprint
from conveyor.runs.work import StoredOutput
from conveyor.sqlite import deferred_sync


def reusable(
    app: Any, node: Node, key: str, *, previous: Any, use_cache: bool, in_process: bool
) -> Any:
    """The execution whose outputs ``node`` reuses under cache key ``key``, or ``None``.

    ``previous`` is the step's execution in the run being resumed (if any); otherwise
    the newest cached execution with that key, unless caching is off or it expired.
    """
    if (
        previous is not None
        and previous.cache_key == key
        and outputs_intact(app, previous, in_process=in_process)
    ):
        return previous
    if not (use_cache and node.step.options.cache):
        return None
    hit = app.metadata.find_cached_step(key)
    if hit is None:
        return None
    expires = node.step.options.cache_expires
    if expires is not None and hit.ended is not None and datetime.now(UTC) - hit.ended > expires:
        return None
    return hit if outputs_intact(app, hit, in_process=in_process) else None


def outputs_intact(app: Any, execution: Any, *, in_process: bool) -> bool:
    """Cached outputs are reused only while their bytes are still stored unchanged."""
    for record in execution.outputs.values():
        if is_transient(record):
            if in_process:
                continue  # nothing stored: recomputed from its inputs when needed
            if "key" not in record.metadata:
                return False  # work elsewhere reads inputs from the store: run it again
        try:
            info = app.artifacts.info(record.metadata["key"])
        except (NotFoundError, KeyError):
            return False
        if info.sha256 != record.metadata.get("sha256", record.fingerprint):
            return False
    return True


def record_outputs(
    metadata: Any, pipeline: str, node: Node, key: str, outputs: Iterable[StoredOutput]
) -> dict[str, Any]:
    """Record each output of ``node``'s finished attempt; ``name -> ArtifactRecord``.

    The records do not wait for the disk: nothing is reusable until the step's
    finish links them, and that commit syncs them too
    (:func:`conveyor.sqlite.deferred_sync`).
    """
    records: dict[str, Any] = {}
    with deferred_sync():
        for out in outputs:
            meta = {
                "materializer": out.materializer,
                "materializer_plugin": out.plugin,
                "step": node.id,
            }
            if out.key is None:
                records[out.name] = metadata.record_artifact(
                    f"transient://{pipeline}/{node.id}/{out.name}",
                    transient_fingerprint(key, out.name),
                    kind=out.materializer,
                    metadata={**meta, "transient": True},
                )
            elif not node.step.options.persist:
                # kept in memory in process; stored only because the work ran elsewhere:
                # fingerprinted as in process, so cache keys and lineage do not depend
                # on the executor (the stored bytes' hash is kept beside)
                records[out.name] = metadata.record_artifact(
                    out.uri or out.key,
                    transient_fingerprint(key, out.name),
                    kind=out.materializer,
                    size=out.size,
                    media_type=out.media_type,
                    metadata={**meta, "key": out.key, "sha256": out.sha256, "transient": True},
                )
            else:
                records[out.name] = metadata.record_artifact(
                    out.uri or out.key,
                    out.sha256 or "",
                    kind=out.materializer,
                    size=out.size,
                    media_type=out.media_type,
                    metadata={**meta, "key": out.key},
                )
    return records


__all__ = ["outputs_intact", "record_outputs", "reusable"]
