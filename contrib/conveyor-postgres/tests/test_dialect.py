"""The PostgreSQL side of conveyor.sqlstore: placeholders and the dialect's statements."""

from __future__ import annotations

from datetime import UTC, datetime

from conveyor_postgres.dialect import PostgresDialect, pyformat


def test_question_marks_become_pyformat_and_percent_signs_are_escaped() -> None:
    assert pyformat("SELECT 1 WHERE a = ? AND b LIKE '50%' AND c = ?") == (
        "SELECT 1 WHERE a = %s AND b LIKE '50%%' AND c = %s"
    )


def test_replace_moves_the_row_last_and_keeps_its_id() -> None:
    sql = PostgresDialect("s").replace_sql("monitoring_results", ("id", "model", "rows"))
    assert sql.startswith("INSERT INTO monitoring_results (id, model, rows) VALUES (?, ?, ?)")
    assert "ON CONFLICT (id) DO UPDATE SET model = excluded.model, rows = excluded.rows" in sql
    assert "seq = nextval(pg_get_serial_sequence('monitoring_results', 'seq'))" in sql
    assert "id = excluded.id" not in sql


def test_times_stay_datetimes_and_lineage_text_is_fixed_width_utc() -> None:
    dialect = PostgresDialect("s")
    at = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert dialect.write_time(at) is at
    assert dialect.time_text(at) == "2024-01-02T03:04:05.000000+00:00"
    assert dialect.time_text(None) is None
