"""``conveyor migrate``: a SQLite project moved to PostgreSQL answers the same."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conveyor.interfaces.registry import DatasetRef
from conveyor.testing import CliInvoker

from .conftest import pg_toml

QUESTIONS = (
    ("models", "history", "churn", "--json"),
    ("models", "history", "churn"),
    ("models", "history", "churn", "--alias", "production", "--json"),
    ("models", "list", "--json"),
    ("models", "show", "churn", "--json"),
    ("models", "show", "churn:2", "--json"),
    ("lineage", "churn:3", "--json"),
    ("lineage", "churn:1"),
    ("runs", "list", "--json"),
    ("models", "check", "--json"),
)


def _fill(app: Any) -> str:
    """Runs, steps, metrics, artifacts and a registry with moves, rollbacks and archives."""
    store, registry, meta = app.artifacts, app.registry, app.metadata
    data = store.put_bytes("data/train.parquet", b"rows")
    model = store.put_bytes("models/churn/model.txt", b"tree\nversion=v4\n")
    event = meta.record_trigger_event("schedule", "nightly", details={"slot": 1}, key="n1")
    run_id = meta.start_run(
        "train", parameters={"lr": 0.1}, trigger_event=event.id, code_fingerprint="c0de"
    )
    step = meta.start_step(run_id, "load", inputs={"raw": data})
    meta.finish_step(step, "succeeded", outputs={"model": model}, metrics={"auc": 0.8})
    # a NaN mid-series (the latest value is what `runs show` prints)
    meta.log_metrics(run_id, [("loss", 0.5, 0), ("loss", float("nan"), 1), ("loss", 0.25, 2)])
    meta.finish_run(run_id, "succeeded")
    span = DatasetRef(
        uri=data.uri,
        fingerprint=data.sha256,
        role="train",
        start=datetime(2024, 1, 1, tzinfo=UTC),
        end=datetime(2024, 2, 1, tzinfo=UTC),
    )
    for n in range(4):
        mv = registry.register(
            "churn",
            artifact_uri=model.uri,
            sha256=model.sha256,
            run_id=run_id,
            datasets=[span],
            metrics={"auc": 0.7 + n / 100},
            governance={"owner": "team"} if n == 1 else None,
        )
        registry.record_validation("churn", mv.version, passed=n != 3, summary=f"v{n + 1}")
    registry.register("other", artifact_uri=model.uri, sha256=model.sha256)
    registry.approve("churn", 2, by="ana", comment="fine")
    for v in (1, 2, 3):
        registry.set_alias("churn", "production", v, actor="ci", reason=f"ship {v}")
    registry.rollback("churn", "production", actor="ops", reason="bad")
    registry.set_alias("churn", "staging", 3, actor="ci")
    registry.set_alias("churn", "production", 4, actor="ops", reason="hotfix", force=True)
    registry.archive("churn", 1, actor="ops", reason="old")
    registry.set_alias("churn", "champion", 1, actor="ops")  # unarchives v1, audited
    return run_id


def _answers(cli: CliInvoker, run_id: str) -> list[str]:
    out = []
    for question in (
        *QUESTIONS,
        ("runs", "show", run_id, "--json"),
        ("lineage", f"run:{run_id}", "--downstream", "--json"),
    ):
        result = cli.invoke(*question)
        assert result.exit_code == 0, (question, result.output)
        out.append(result.output)
    return out


def test_a_sqlite_project_moved_to_postgres_answers_identically(
    tmp_path: Path,
    plugin_manager: Any,
    register_plugin: Any,
    pg_url: str,
    pg_schema: str,
    cli: CliInvoker,
    conveyor_app: Any,
) -> None:
    import conveyor_postgres

    register_plugin(conveyor_postgres, "postgres")
    run_id = _fill(conveyor_app)
    conveyor_app.close()
    (tmp_path / "conveyor.toml").write_text('[project]\nname = "pg"\n')
    before = _answers(cli, run_id)
    assert json.loads(before[0])  # the history is not empty

    moved = cli.invoke("migrate", pg_url, "--schema", pg_schema, "--json")
    assert moved.exit_code == 0, moved.output
    report = json.loads(moved.output)
    assert (report["models"], report["versions"], report["runs"]) == (2, 5, 1)
    assert report["audit_records"] == 9

    (tmp_path / "conveyor.toml").write_text(pg_toml(pg_url, pg_schema))
    after = _answers(cli, run_id)
    assert after == before
    # and the moved registry goes on from where it was
    promoted = cli.invoke("models", "promote", "churn", "2", "--to", "production", "--json")
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.output)["id"] == 10


def test_migrating_into_a_non_empty_schema_is_refused(
    tmp_path: Path,
    plugin_manager: Any,
    register_plugin: Any,
    pg_url: str,
    pg_schema: str,
    cli: CliInvoker,
    conveyor_app: Any,
) -> None:
    import conveyor_postgres

    register_plugin(conveyor_postgres, "postgres")
    _fill(conveyor_app)
    conveyor_app.close()
    (tmp_path / "conveyor.toml").write_text('[project]\nname = "pg"\n')
    assert cli.invoke("migrate", pg_url, "--schema", pg_schema).exit_code == 0
    again = cli.invoke("migrate", pg_url, "--schema", pg_schema)
    assert again.exit_code != 0
    assert "not empty" in again.output


@pytest.mark.parametrize("url", ["sqlite:///x.db", "mysql://host/db"])
def test_only_postgres_urls_are_targets(
    url: str, register_plugin: Any, cli: CliInvoker, tmp_path: Path
) -> None:
    import conveyor_postgres

    register_plugin(conveyor_postgres, "postgres")
    (tmp_path / "conveyor.toml").write_text('[project]\nname = "pg"\n')
    result = cli.invoke("migrate", url)
    assert result.exit_code == 2
    assert "not a PostgreSQL URL" in result.output
