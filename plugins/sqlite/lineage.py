"""Lineage in the SQLite metadata store: model records, and graph traversal.

The graph is derived from the metadata store's own tables (steps, runs,
artifacts, trigger events, and the model records core writes through
``record_model``), never from the registry's: the two may be different files.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.interfaces.lineage import (
    Direction,
    FeatureViewUse,
    LineageEdge,
    LineageGraph,
    LineageNode,
    ModelRecord,
    parse_node,
)
from conveyor.plugins.sqlite.rows import insert_artifact
from conveyor.sqlite import dumps, loads, ts


def write_model(conn: sqlite3.Connection, record: ModelRecord) -> None:
    """Record a model version's node and edges inside the caller's transaction."""
    stamp = ts(record.created)
    aid = insert_artifact(conn, record.artifact_uri, record.sha256, kind="model", at=stamp)
    conn.execute(
        "INSERT INTO lineage_models (name, version, artifact_id, artifact_uri, sha256, run_id, "
        "created) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, version) DO NOTHING",
        (
            record.model,
            record.version,
            aid,
            record.artifact_uri,
            record.sha256,
            record.run_id,
            stamp,
        ),
    )
    for ref in record.datasets:
        daid = insert_artifact(conn, ref.uri, ref.fingerprint, kind="dataset", at=stamp)
        conn.execute(
            "INSERT OR IGNORE INTO lineage_model_datasets (name, version, artifact_id, role, "
            'start, "end") VALUES (?, ?, ?, ?, ?, ?)',
            (
                record.model,
                record.version,
                daid,
                ref.role,
                ref.start and ts(ref.start),
                ref.end and ts(ref.end),
            ),
        )
    for position, use in enumerate(record.features):
        conn.execute(
            "INSERT OR IGNORE INTO lineage_model_features (name, version, view, view_version, "
            "features, position) VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.model,
                record.version,
                use.view,
                int(use.version),
                dumps(list(use.features)),
                position,
            ),
        )


def read_model_features(
    conn: sqlite3.Connection, model: str, version: int
) -> tuple[FeatureViewUse, ...]:
    """The feature views a recorded model version trained on, in recorded order."""
    known = conn.execute(
        "SELECT 1 FROM lineage_models WHERE name = ? AND version = ?", (model, int(version))
    ).fetchone()
    if known is None:
        raise NotFoundError(f"model {model!r} version {version} is not recorded in lineage")
    rows = conn.execute(
        "SELECT view, view_version, features FROM lineage_model_features "
        "WHERE name = ? AND version = ? ORDER BY position",
        (model, int(version)),
    ).fetchall()
    return tuple(FeatureViewUse(view=r[0], version=r[1], features=loads(r[2])) for r in rows)


def traverse(
    conn: sqlite3.Connection,
    node: str,
    *,
    direction: Direction,
    depth: int,
    max_nodes: int,
    resolve_run: Callable[[sqlite3.Connection, str], str],
) -> LineageGraph:
    """The lineage graph around ``node``, read inside the caller's read transaction."""
    if direction not in ("upstream", "downstream"):
        raise ConveyorError(
            f"unknown lineage direction {direction!r}", hint="use 'upstream' or 'downstream'"
        )
    try:
        kind, _ = parse_node(node)
    except ValueError as exc:
        raise ConveyorError(str(exc)) from None
    if kind == "run":
        node = f"run:{resolve_run(conn, node[4:])}"
    root = _describe(conn, node)
    if root is None:
        raise NotFoundError(f"nothing is recorded for lineage node {node!r}")
    nodes = {node: root}
    edges: dict[tuple[str, str, str], LineageEdge] = {}
    frontier = [node]
    truncated = False
    for _level in range(depth):
        following: list[str] = []
        for current in frontier:
            for edge, other, expand in _neighbours(conn, current, direction):
                edges.setdefault((edge.src, edge.dst, edge.relation), edge)
                if other in nodes:
                    continue
                if len(nodes) >= max_nodes:
                    truncated = True
                    continue
                described = _describe(conn, other)
                nodes[other] = described or LineageNode(
                    id=other, kind=other.split(":", 1)[0], label=other, attributes={"missing": True}
                )
                if expand:
                    following.append(other)
        frontier = following
        if not frontier:
            break
    else:
        truncated = truncated or bool(frontier)
    kept = tuple(e for e in edges.values() if e.src in nodes and e.dst in nodes)
    return LineageGraph(
        root=node, direction=direction, nodes=nodes, edges=kept, truncated=truncated
    )


def _neighbours(
    conn: sqlite3.Connection, node: str, direction: str
) -> list[tuple[LineageEdge, str, bool]]:
    """``(edge, other node, expand it?)`` for each edge of ``node`` in ``direction``."""
    kind, key = node.split(":", 1)
    up = direction == "upstream"
    found: list[tuple[LineageEdge, str, bool]] = []

    def add(src: str, dst: str, relation: str, expand: bool = True) -> None:
        found.append(
            (LineageEdge(src=src, dst=dst, relation=relation), src if src != node else dst, expand)
        )

    if kind == "artifact":
        if up:
            for (sid,) in conn.execute(
                "SELECT step_id FROM step_artifacts WHERE artifact_id = ? AND direction = 'output'",
                (key,),
            ):
                add(f"step:{sid}", node, "output")
        else:
            for (sid,) in conn.execute(
                "SELECT step_id FROM step_artifacts WHERE artifact_id = ? AND direction = 'input'",
                (key,),
            ):
                add(node, f"step:{sid}", "input")
            for name, version in conn.execute(
                "SELECT name, version FROM lineage_models WHERE artifact_id = ?", (key,)
            ):
                add(node, f"model:{name}:{version}", "registered_as")
            for name, version in conn.execute(
                "SELECT DISTINCT name, version FROM lineage_model_datasets WHERE artifact_id = ?",
                (key,),
            ):
                add(node, f"model:{name}:{version}", "trained_on")
    elif kind == "step":
        wanted = "input" if up else "output"
        for (aid,) in conn.execute(
            "SELECT artifact_id FROM step_artifacts WHERE step_id = ? "
            "AND direction = ? ORDER BY name",
            (key, wanted),
        ):
            if up:
                add(f"artifact:{aid}", node, "input")
            else:
                add(node, f"artifact:{aid}", "output")
        if up:
            row = conn.execute("SELECT run_id FROM steps WHERE id = ?", (key,)).fetchone()
            if row is not None:  # shown, not expanded: its sibling steps are not upstream
                add(f"run:{row[0]}", node, "contains", expand=False)
    elif kind == "run":
        for (sid,) in conn.execute(
            "SELECT id FROM steps WHERE run_id = ? ORDER BY started, rowid", (key,)
        ):
            add(node, f"step:{sid}", "contains")
        if up:
            row = conn.execute("SELECT trigger_event FROM runs WHERE id = ?", (key,)).fetchone()
            if row is not None and row[0] is not None:
                add(f"trigger:{row[0]}", node, "triggered")
        else:
            for name, version in conn.execute(
                "SELECT name, version FROM lineage_models WHERE run_id = ?", (key,)
            ):
                add(node, f"model:{name}:{version}", "produced")
    elif kind == "trigger":
        if not up:
            for (rid,) in conn.execute("SELECT id FROM runs WHERE trigger_event = ?", (key,)):
                add(node, f"run:{rid}", "triggered")
    elif kind == "model" and up:
        name, _, version = key.rpartition(":")
        row = conn.execute(
            "SELECT artifact_id, run_id FROM lineage_models WHERE name = ? AND version = ?",
            (name, _int(version)),
        ).fetchone()
        if row is not None:
            add(f"artifact:{row[0]}", node, "registered_as")
            if row[1]:
                add(f"run:{row[1]}", node, "produced")
            for (aid,) in conn.execute(
                "SELECT artifact_id FROM lineage_model_datasets "
                "WHERE name = ? AND version = ? ORDER BY role",
                (name, _int(version)),
            ):
                add(f"artifact:{aid}", node, "trained_on")
            for view, view_version in conn.execute(
                "SELECT view, view_version FROM lineage_model_features WHERE name = ? "
                "AND version = ? ORDER BY position",
                (name, _int(version)),
            ):
                add(f"feature_view:{view}:{view_version}", node, "definition")
    elif kind == "feature_view" and not up:
        view, _, version = key.rpartition(":")
        for name, model_version in conn.execute(
            "SELECT name, version FROM lineage_model_features WHERE view = ? AND "
            "view_version = ? ORDER BY name, version",
            (view, _int(version)),
        ):
            add(node, f"model:{name}:{model_version}", "definition")
    return found


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return -1


def _describe(conn: sqlite3.Connection, node: str) -> LineageNode | None:
    """The node's label and attributes, or ``None`` when nothing is recorded for it."""
    kind, key = node.split(":", 1)
    if kind == "artifact":
        row = conn.execute(
            "SELECT uri, fingerprint, kind FROM artifacts WHERE id = ?", (key,)
        ).fetchone()
        return row and LineageNode(
            id=node,
            kind=kind,
            label=row[0],
            attributes={"uri": row[0], "fingerprint": row[1], "artifact_kind": row[2]},
        )
    if kind == "step":
        row = conn.execute(
            "SELECT name, status, run_id, cache_hit FROM steps WHERE id = ?", (key,)
        ).fetchone()
        return row and LineageNode(
            id=node,
            kind=kind,
            label=row[0],
            attributes={"status": row[1], "run_id": row[2], "cache_hit": bool(row[3])},
        )
    if kind == "run":
        row = conn.execute(
            "SELECT pipeline, status, started, code_fingerprint, git_commit FROM runs WHERE id = ?",
            (key,),
        ).fetchone()
        return row and LineageNode(
            id=node,
            kind=kind,
            label=f"{row[0]} {key}",
            attributes={
                "pipeline": row[0],
                "status": row[1],
                "started": row[2],
                "code_fingerprint": row[3],
                "git_commit": row[4],
            },
        )
    if kind == "trigger":
        row = conn.execute(
            "SELECT trigger, reason, created FROM trigger_events WHERE id = ?", (key,)
        ).fetchone()
        return row and LineageNode(
            id=node, kind=kind, label=row[0], attributes={"reason": row[1], "at": row[2]}
        )
    if kind == "model":
        name, _, version = key.rpartition(":")
        row = conn.execute(
            "SELECT artifact_uri, sha256, created FROM lineage_models "
            "WHERE name = ? AND version = ?",
            (name, _int(version)),
        ).fetchone()
        return row and LineageNode(
            id=node,
            kind=kind,
            label=f"{name} v{version}",
            attributes={"artifact_uri": row[0], "sha256": row[1], "created": row[2]},
        )
    if kind == "feature_view":
        view, _, version = key.rpartition(":")
        used = conn.execute(
            "SELECT 1 FROM lineage_model_features WHERE view = ? AND view_version = ? LIMIT 1",
            (view, _int(version)),
        ).fetchone()
        if used is None:
            return None
        attributes = {"view": view, "version": _int(version)}
        row = conn.execute(
            "SELECT fingerprint, created FROM definitions WHERE kind = "
            "'feature_view' AND name = ? AND version = ?",
            (view, _int(version)),
        ).fetchone()
        if row is not None:  # the definition itself, when this store holds it
            attributes.update(fingerprint=row[0], created=row[1])
        return LineageNode(id=node, kind=kind, label=f"{view} v{version}", attributes=attributes)
    return None
