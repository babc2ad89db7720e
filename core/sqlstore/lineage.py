"""Lineage in a SQL metadata store: model records, and graph traversal.

The graph is derived from the metadata store's own tables (steps, runs,
artifacts, trigger events, and the model records core writes through
``record_model``), never from the registry's: the two may be different
databases.  Node ids, labels and attributes are the same in every store, times
as fixed-width UTC text.
"""

from __future__ import annotations

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
from conveyor.sqlite import dumps, loads
from conveyor.sqlstore.dialect import Connection, Dialect, Transactions
from conveyor.sqlstore.steps import resolve_run_id
from conveyor.sqlstore.values import insert_artifact


def write_model(conn: Connection, dialect: Dialect, record: ModelRecord) -> None:
    """Record a model version's node and edges inside the caller's transaction."""
    time = dialect.write_time
    at = time(record.created)
    aid = insert_artifact(conn, record.artifact_uri, record.sha256, kind="model", at=at)
    conn.execute(
        "INSERT INTO lineage_models (name, version, artifact_id, artifact_uri, sha256, "
        "run_id, created) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, version) DO NOTHING",
        (record.model, record.version, aid, record.artifact_uri, record.sha256, record.run_id, at),
    )
    for ref in record.datasets:
        daid = insert_artifact(conn, ref.uri, ref.fingerprint, kind="dataset", at=at)
        conn.execute(
            "INSERT INTO lineage_model_datasets (name, version, artifact_id, role, start, "
            '"end") VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
            (
                record.model,
                record.version,
                daid,
                ref.role,
                ref.start and time(ref.start),
                ref.end and time(ref.end),
            ),
        )
    for position, use in enumerate(record.features):
        conn.execute(
            "INSERT INTO lineage_model_features (name, version, view, view_version, "
            "features, position) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                record.model,
                record.version,
                use.view,
                int(use.version),
                dumps(list(use.features)),
                position,
            ),
        )


class SQLLineage:
    """The metadata store's lineage methods, over ``self.sql``."""

    sql: Transactions
    dialect: Dialect

    def record_model(self, record: ModelRecord) -> None:
        self.sql.write(lambda conn: write_model(conn, self.dialect, record), retry_conflicts=True)

    def model_features(self, model: str, version: int) -> tuple[FeatureViewUse, ...]:
        """The feature views a recorded model version trained on, in recorded order."""
        with self.sql.snapshot() as conn:
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

    def lineage(
        self,
        node: str,
        *,
        direction: Direction = "upstream",
        depth: int = 10,
        max_nodes: int = 1000,
    ) -> LineageGraph:
        if direction not in ("upstream", "downstream"):
            raise ConveyorError(
                f"unknown lineage direction {direction!r}", hint="use 'upstream' or 'downstream'"
            )
        try:
            kind, _ = parse_node(node)
        except ValueError as exc:
            raise ConveyorError(str(exc)) from None
        with self.sql.snapshot() as conn:
            if kind == "run":
                node = f"run:{resolve_run_id(conn, node[4:])}"
            return self._traverse(conn, node, direction, depth, max_nodes)

    def _traverse(
        self, conn: Connection, node: str, direction: Direction, depth: int, max_nodes: int
    ) -> LineageGraph:
        """The lineage graph around ``node``, read inside the caller's read transaction."""
        root = self._describe(conn, node)
        if root is None:
            raise NotFoundError(f"nothing is recorded for lineage node {node!r}")
        nodes = {node: root}
        edges: dict[tuple[str, str, str], LineageEdge] = {}
        frontier = [node]
        truncated = False
        for _level in range(depth):
            following: list[str] = []
            for current in frontier:
                for edge, other, expand in self._neighbours(conn, current, direction):
                    edges.setdefault((edge.src, edge.dst, edge.relation), edge)
                    if other in nodes:
                        continue
                    if len(nodes) >= max_nodes:
                        truncated = True
                        continue
                    described = self._describe(conn, other)
                    nodes[other] = described or LineageNode(
                        id=other,
                        kind=other.split(":", 1)[0],
                        label=other,
                        attributes={"missing": True},
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
        self, conn: Connection, node: str, direction: str
    ) -> list[tuple[LineageEdge, str, bool]]:
        """``(edge, other node, expand it?)`` for each edge of ``node`` in ``direction``."""
        kind, key = node.split(":", 1)
        up = direction == "upstream"
        found: list[tuple[LineageEdge, str, bool]] = []

        def add(src: str, dst: str, relation: str, expand: bool = True) -> None:
            found.append(
                (
                    LineageEdge(src=src, dst=dst, relation=relation),
                    src if src != node else dst,
                    expand,
                )
            )

        seq = self.dialect.seq

        def rows(sql: str, *args: object) -> list[tuple[object, ...]]:
            return conn.execute(sql, args).fetchall()

        if kind == "artifact":
            if up:
                for (sid,) in rows(
                    "SELECT step_id FROM step_artifacts WHERE artifact_id = ? "
                    "AND direction = 'output' ORDER BY step_id",
                    key,
                ):
                    add(f"step:{sid}", node, "output")
            else:
                for (sid,) in rows(
                    "SELECT step_id FROM step_artifacts WHERE artifact_id = ? "
                    "AND direction = 'input' ORDER BY step_id",
                    key,
                ):
                    add(node, f"step:{sid}", "input")
                for name, version in rows(
                    "SELECT name, version FROM lineage_models "
                    "WHERE artifact_id = ? ORDER BY name, version",
                    key,
                ):
                    add(node, f"model:{name}:{version}", "registered_as")
                for name, version in rows(
                    "SELECT DISTINCT name, version FROM "
                    "lineage_model_datasets WHERE artifact_id = ? "
                    "ORDER BY name, version",
                    key,
                ):
                    add(node, f"model:{name}:{version}", "trained_on")
        elif kind == "step":
            wanted = "input" if up else "output"
            for (aid,) in rows(
                "SELECT artifact_id FROM step_artifacts WHERE step_id = ? "
                "AND direction = ? ORDER BY name",
                key,
                wanted,
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
            for (sid,) in rows(
                f"SELECT id FROM steps WHERE run_id = ? ORDER BY started, {seq}", key
            ):
                add(node, f"step:{sid}", "contains")
            if up:
                row = conn.execute("SELECT trigger_event FROM runs WHERE id = ?", (key,)).fetchone()
                if row is not None and row[0] is not None:
                    add(f"trigger:{row[0]}", node, "triggered")
            else:
                for name, version in rows(
                    "SELECT name, version FROM lineage_models WHERE run_id = ? "
                    "ORDER BY name, version",
                    key,
                ):
                    add(node, f"model:{name}:{version}", "produced")
        elif kind == "trigger":
            if not up:
                for (rid,) in rows(
                    f"SELECT id FROM runs WHERE trigger_event = ? ORDER BY {seq}", key
                ):
                    add(node, f"run:{rid}", "triggered")
        elif kind == "model" and up:
            name, _, version = key.rpartition(":")
            row = conn.execute(
                "SELECT artifact_id, run_id FROM lineage_models WHERE name = ? AND version = ?",
                (name, self._int(version)),
            ).fetchone()
            if row is not None:
                add(f"artifact:{row[0]}", node, "registered_as")
                if row[1]:
                    add(f"run:{row[1]}", node, "produced")
                for (aid,) in rows(
                    "SELECT artifact_id FROM lineage_model_datasets WHERE "
                    "name = ? AND version = ? ORDER BY role, artifact_id",
                    name,
                    self._int(version),
                ):
                    add(f"artifact:{aid}", node, "trained_on")
                for view, view_version in rows(
                    "SELECT view, view_version FROM lineage_model_features WHERE name = ? "
                    "AND version = ? ORDER BY position",
                    name,
                    self._int(version),
                ):
                    add(f"feature_view:{view}:{view_version}", node, "definition")
        elif kind == "feature_view" and not up:
            view, _, version = key.rpartition(":")
            for name, model_version in rows(
                "SELECT name, version FROM lineage_model_features WHERE view = ? AND "
                "view_version = ? ORDER BY name, version",
                view,
                self._int(version),
            ):
                add(node, f"model:{name}:{model_version}", "definition")
        return found

    @staticmethod
    def _int(value: str) -> int:
        try:
            return int(value)
        except ValueError:
            return -1

    def _describe(self, conn: Connection, node: str) -> LineageNode | None:
        """The node's label and attributes, or ``None`` when nothing is recorded for it."""
        kind, key = node.split(":", 1)
        text = self.dialect.time_text
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
                "SELECT pipeline, status, started, code_fingerprint, git_commit "
                "FROM runs WHERE id = ?",
                (key,),
            ).fetchone()
            return row and LineageNode(
                id=node,
                kind=kind,
                label=f"{row[0]} {key}",
                attributes={
                    "pipeline": row[0],
                    "status": row[1],
                    "started": text(row[2]),
                    "code_fingerprint": row[3],
                    "git_commit": row[4],
                },
            )
        if kind == "trigger":
            row = conn.execute(
                "SELECT trigger, reason, created FROM trigger_events WHERE id = ?", (key,)
            ).fetchone()
            return row and LineageNode(
                id=node, kind=kind, label=row[0], attributes={"reason": row[1], "at": text(row[2])}
            )
        if kind == "model":
            name, _, version = key.rpartition(":")
            row = conn.execute(
                "SELECT artifact_uri, sha256, created FROM lineage_models "
                "WHERE name = ? AND version = ?",
                (name, self._int(version)),
            ).fetchone()
            return row and LineageNode(
                id=node,
                kind=kind,
                label=f"{name} v{version}",
                attributes={"artifact_uri": row[0], "sha256": row[1], "created": text(row[2])},
            )
        if kind == "feature_view":
            view, _, version = key.rpartition(":")
            used = conn.execute(
                "SELECT 1 FROM lineage_model_features WHERE view = ? AND view_version = ? LIMIT 1",
                (view, self._int(version)),
            ).fetchone()
            if used is None:
                return None
            attributes: dict[str, object] = {"view": view, "version": self._int(version)}
            found = conn.execute(
                "SELECT fingerprint, created FROM definitions WHERE kind = "
                "'feature_view' AND name = ? AND version = ?",
                (view, self._int(version)),
            ).fetchone()
            if found is not None:  # the definition itself, when this store holds it
                attributes.update(fingerprint=found[0], created=text(found[1]))
            return LineageNode(
                id=node, kind=kind, label=f"{view} v{version}", attributes=attributes
            )
        return None
