"""Copy a project's registry and metadata store, whatever their backends, into PostgreSQL.

The source is read through the interfaces only (:class:`RegistryBackend`,
:class:`MetadataStore`), so any backend can be migrated; the target schema is
written row by row with every id, number and time kept (audit ids and times,
version numbers, run/step/trigger ids, artifact ids, metric order), in one
transaction per store: a failed migration leaves the target as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from attrs import asdict, frozen

from conveyor.errors import ConveyorError
from conveyor.interfaces.lineage import ModelRecord
from conveyor.sqlite import dumps
from conveyor.sqlstore.lineage import write_model
from conveyor.sqlstore.values import finite_or_none, insert_artifact
from conveyor_postgres.db import Database
from conveyor_postgres.dialect import PostgresDialect, QmarkConnection

if TYPE_CHECKING:
    import psycopg

    from conveyor.interfaces.metadata import ArtifactRecord, MetadataStore
    from conveyor.interfaces.registry import ModelVersion, RegistryBackend

#: Definition kinds copied when none are named (the bundled feature store's).
DEFINITION_KINDS = ("entity", "feature_view")
_ALL = 10**9


@frozen(kw_only=True)
class MigrationReport:
    """What a migration copied."""

    models: int = 0
    versions: int = 0
    audit_records: int = 0
    runs: int = 0
    steps: int = 0
    artifacts: int = 0
    metrics: int = 0
    trigger_events: int = 0
    definitions: int = 0


def _refuse_non_empty(conn: psycopg.Connection, tables: Sequence[str], what: str) -> None:
    for table in tables:
        if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
            raise ConveyorError(
                f"the target {what} is not empty (table {table} has rows)",
                hint="migrate into a new schema: --schema NAME",
            )


def copy_registry(source: RegistryBackend, target: Database) -> dict[str, int]:
    """Copy every model, version, verdict, approval and audit record into ``target``."""
    snapshot = source.audit_snapshot()
    summaries = source.list_models()
    versions = {s.name: source.list_versions(s.name) for s in summaries}
    verdicts = {
        (mv.name, mv.version): source.validations(mv.name, mv.version)
        for vs in versions.values()
        for mv in vs
    }

    def write(conn: psycopg.Connection) -> None:
        _refuse_non_empty(conn, ("models", "alias_audit"), "registry")
        for summary in summaries:
            first = versions[summary.name][0].created if versions[summary.name] else summary.updated
            conn.execute(
                "INSERT INTO models (name, latest_version, created, updated) "
                "VALUES (%s, %s, %s, %s)",
                (summary.name, summary.latest_version, first, summary.updated),
            )
            for mv in versions[summary.name]:
                _insert_version(conn, mv)
        for change in snapshot.changes:
            conn.execute(
                "INSERT INTO alias_audit (id, name, alias, from_version, to_version, action, "
                "actor, at, reason, forced, evidence) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s, %s)",
                (
                    change.id,
                    change.model,
                    change.alias,
                    change.from_version,
                    change.to_version,
                    change.action,
                    change.actor,
                    change.at,
                    change.reason,
                    change.forced,
                    dumps(change.evidence),
                ),
            )
        for (name, alias), (version, audit_id) in sorted(snapshot.holders.items()):
            conn.execute(
                "INSERT INTO aliases (name, alias, version, audit_id) VALUES (%s, %s, %s, %s)",
                (name, alias, version, audit_id),
            )
        if snapshot.changes:
            last = snapshot.changes[-1]
            conn.execute(
                "UPDATE audit_clock SET last_id = %s, last_at = %s",
                (max(c.id for c in snapshot.changes), last.at),
            )
        for (name, version), found in sorted(verdicts.items()):
            for verdict in found:
                conn.execute(
                    "INSERT INTO validations (id, name, version, passed, at, actor, run_id, "
                    "summary, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        verdict.id,
                        name,
                        version,
                        verdict.passed,
                        verdict.at,
                        verdict.actor,
                        verdict.run_id,
                        verdict.summary,
                        dumps(verdict.details),
                    ),
                )
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('validations', 'id'), "
            "coalesce((SELECT max(id) FROM validations), 0) + 1, false)"
        )

    target.write(write)
    return {
        "models": len(summaries),
        "versions": sum(len(v) for v in versions.values()),
        "audit_records": len(snapshot.changes),
    }


def _insert_version(conn: psycopg.Connection, mv: ModelVersion) -> None:
    gov = {k: v for k, v in asdict(mv.governance, recurse=False).items() if k != "approvals"}
    gov_json = "{}" if not any(gov.values()) else dumps(gov)
    aid = insert_artifact(
        QmarkConnection(conn),
        mv.artifact_uri,
        mv.sha256,
        kind="model",
        at=mv.created,
        metadata={"model_format": mv.model_format},
        table="registry_artifacts",
    )
    conn.execute(
        "INSERT INTO model_versions (name, version, created, created_by, artifact_uri, sha256, "
        "artifact_id, model_format, archived, metrics, params, governance, signature, "
        "profile_uri, run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
        "%s, %s)",
        (
            mv.name,
            mv.version,
            mv.created,
            mv.created_by,
            mv.artifact_uri,
            mv.sha256,
            aid,
            mv.model_format,
            mv.archived,
            dumps(mv.metrics) if mv.metrics else "{}",
            dumps(mv.params) if mv.params else "{}",
            gov_json,
            dumps(mv.signature.to_dict()) if mv.signature.features else "[]",
            mv.profile_uri,
            mv.run_id,
        ),
    )
    for ref in mv.datasets:
        daid = insert_artifact(
            QmarkConnection(conn),
            ref.uri,
            ref.fingerprint,
            kind="dataset",
            at=mv.created,
            table="registry_artifacts",
        )
        conn.execute(
            "INSERT INTO model_datasets (name, version, artifact_id, role, start, "
            '"end") VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING',
            (mv.name, mv.version, daid, ref.role, ref.start, ref.end),
        )
    for approval in mv.governance.approvals:
        conn.execute(
            "INSERT INTO approvals (name, version, by, at, comment) VALUES (%s, %s, %s, %s, %s)",
            (mv.name, mv.version, approval.by, approval.at, approval.comment),
        )


def copy_metadata(
    source: MetadataStore,
    target: Database,
    *,
    registry: Any = None,
    kinds: Sequence[str] = DEFINITION_KINDS,
) -> dict[str, int]:
    """Copy pipelines, runs, steps, artifacts, metrics, trigger events, definitions and
    model lineage (from ``registry``'s versions) into ``target``."""
    pipelines = source.list_pipelines()
    events = source.list_trigger_events(limit=_ALL)[::-1]
    runs = [source.get_run(r.id) for r in source.search_runs(limit=_ALL)[::-1]]
    metrics = {run.id: source.get_metrics(run.id) for run in runs}
    artifacts = source.find_artifacts(limit=_ALL)[::-1]
    definitions = [
        d
        for kind in kinds
        for latest in source.list_definitions(kind)
        for d in source.definition_history(kind, latest.name)
    ]
    models = [s.name for s in registry.list_models()] if registry is not None else []
    results = [
        r for name in models for r in source.list_monitoring_results(model=name, limit=_ALL)[::-1]
    ]
    records = [
        ModelRecord(
            model=mv.name,
            version=mv.version,
            artifact_uri=mv.artifact_uri,
            sha256=mv.sha256,
            run_id=mv.run_id,
            created=mv.created,
            datasets=mv.datasets,
        )
        for summary in (registry.list_models() if registry is not None else [])
        for mv in registry.list_versions(summary.name)
    ]

    def write(conn: psycopg.Connection) -> None:
        _refuse_non_empty(
            conn, ("runs", "artifacts", "trigger_events", "definitions"), "metadata store"
        )
        for p in pipelines:
            conn.execute(
                "INSERT INTO pipelines (name, code_fingerprint, git_commit, created, "
                "updated) VALUES (%s, %s, %s, %s, %s)",
                (p.name, p.code_fingerprint, p.git_commit, p.created, p.updated),
            )
        for e in events:
            conn.execute(
                "INSERT INTO trigger_events (id, trigger, reason, details, key, fired, "
                "created) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (e.id, e.trigger, e.reason, dumps(e.details), e.key, e.fired, e.created),
            )
        for a in artifacts:
            _insert_artifact(conn, a)
        for run in runs:
            _insert_run(conn, run, metrics[run.id])
        for d in definitions:
            conn.execute(
                "INSERT INTO definitions (kind, name, version, spec, fingerprint, "
                "created) VALUES (%s, %s, %s, %s, %s, %s)",
                (d.kind, d.name, d.version, dumps(d.spec), d.fingerprint, d.created),
            )
        dialect = PostgresDialect(target.schema)
        for record in records:
            write_model(QmarkConnection(conn), dialect, record)
        for result in results:
            conn.execute(
                "INSERT INTO monitoring_results (id, model, version, kind, window_start, "
                "window_end, rows, scores, breached, details, created) VALUES (%s, %s, %s, %s, "
                "%s, %s, %s, %s, %s, %s, %s)",
                (
                    result.id,
                    result.model,
                    result.version,
                    result.kind,
                    result.window_start,
                    result.window_end,
                    result.rows,
                    dumps(result.scores),
                    dumps(list(result.breached)),
                    dumps(result.details),
                    result.created,
                ),
            )

    target.write(write)
    return {
        "runs": len(runs),
        "steps": sum(len(r.steps) for r in runs),
        "artifacts": len(artifacts),
        "metrics": sum(len(m) for m in metrics.values()),
        "trigger_events": len(events),
        "definitions": len(definitions),
        "monitoring_results": len(results),
    }


def _insert_artifact(conn: psycopg.Connection, record: ArtifactRecord) -> None:
    insert_artifact(
        QmarkConnection(conn),
        record.uri,
        record.fingerprint,
        kind=record.kind,
        size=record.size,
        media_type=record.media_type,
        metadata=record.metadata,
        at=record.created,
    )


def _insert_run(conn: psycopg.Connection, run: Any, points: Sequence[Any]) -> None:
    conn.execute(
        "INSERT INTO runs (id, pipeline, status, started, ended, parameters, trigger_event, "
        "code_fingerprint, git_commit, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            run.id,
            run.pipeline,
            run.status,
            run.started,
            run.ended,
            dumps(run.parameters),
            run.trigger_event,
            run.code_fingerprint,
            run.git_commit,
            run.error,
        ),
    )
    for step in run.steps:
        conn.execute(
            "INSERT INTO steps (id, run_id, name, status, started, ended, logs_uri, cache_key, "
            "cache_hit, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                step.id,
                run.id,
                step.name,
                step.status,
                step.started,
                step.ended,
                step.logs_uri,
                step.cache_key,
                step.cache_hit,
                step.error,
            ),
        )
        for direction, refs in (("input", step.inputs), ("output", step.outputs)):
            for label, record in refs.items():
                _insert_artifact(conn, record)
                conn.execute(
                    "INSERT INTO step_artifacts (step_id, direction, name, "
                    "artifact_id) VALUES (%s, %s, %s, %s)",
                    (step.id, direction, label, record.id),
                )
    for point in points:
        conn.execute(
            "INSERT INTO metrics (run_id, step_id, key, value, idx, at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (run.id, point.step, point.key, finite_or_none(point.value), point.index, point.at),
        )
