"""``conveyor features``: apply, list, ingest, materialize and parity, end to end."""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

DEFINITIONS = """
from datetime import timedelta
from conveyor.features import Entity, Feature, FeatureView

customer = Entity(name="customer", join_keys="customer_id")
stats = FeatureView(
    name="stats", entities=[customer], ttl=timedelta(days={ttl}),
    features=[Feature(name="spend"), Feature(name="orders", dtype="int64")],
    source="warehouse.customer_stats",
)
"""
T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI puts the project root on sys.path; keep other tests' roots out."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "features", raising=False)


def write_project(root: Path, ttl: int = 30) -> None:
    (root / "features.py").write_text(DEFINITIONS.format(ttl=ttl))
    pl.DataFrame(
        {
            "customer_id": list(range(40)) * 2,
            "event_timestamp": [T0] * 40 + [T0 + timedelta(hours=5)] * 40,
            "spend": [float(i) for i in range(80)],
            "orders": list(range(80)),
        }
    ).write_parquet(root / "stats.parquet")


def test_apply_list_ingest_materialize_parity(cli, tmp_path: Path) -> None:
    write_project(tmp_path)
    first = cli.invoke("features", "apply", "--json")
    assert first.exit_code == 0, first.output
    assert {(d["kind"], d["name"], d["version"]) for d in json.loads(first.output)} == {
        ("entity", "customer", 1),
        ("feature_view", "stats", 1),
    }
    again = json.loads(cli.invoke("features", "apply", "--json").output)
    assert {d["version"] for d in again} == {1}
    write_project(tmp_path, ttl=7)
    changed = json.loads(cli.invoke("features", "apply", "features.py", "--json").output)
    assert {d["name"]: d["version"] for d in changed} == {"customer": 1, "stats": 2}

    listed = json.loads(cli.invoke("features", "list", "--json").output)
    assert [(v["name"], v["version"], v["ttl_seconds"], v["watermark"]) for v in listed] == [
        ("stats", 2, 7 * 86400.0, None)
    ]

    ingested = cli.invoke("features", "ingest", "stats", "stats.parquet")
    assert ingested.exit_code == 0, ingested.output
    assert "80 rows" in ingested.output
    done = cli.invoke("features", "materialize", "stats", "--end", "2024-03-02", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)[0]["rows"] == 40
    assert "2024-03-02" in cli.invoke("features", "list").output

    clean = cli.invoke("features", "parity", "stats", "--sample", "40", "--json")
    assert clean.exit_code == 0, clean.output
    report = json.loads(clean.output)
    assert (report["ok"], report["sampled"], report["compared"]) == (True, 40, 80)

    # inject training-serving skew: one online value differs from the offline truth
    db = sqlite3.connect(tmp_path / ".conveyor" / "online.db")
    with db:
        db.execute('UPDATE "fv_stats" SET spend = spend + 0.5 WHERE customer_id = 17')
    db.close()
    skewed = cli.invoke("features", "parity", "stats", "--sample", "40", "--json")
    assert skewed.exit_code == 1
    found = json.loads(skewed.output)["mismatches"]
    assert found == [
        {"key": {"customer_id": 17}, "feature": "spend", "online": 57.5, "offline": 57.0}
    ]
    text = cli.invoke("features", "parity", "stats", "--sample", "40")
    assert text.exit_code == 1
    assert "1 mismatch" in text.output
    assert "customer_id=17" in text.output


def test_errors_name_the_fix(cli, tmp_path: Path) -> None:
    missing = cli.invoke("features", "apply")
    assert missing.exit_code == 1
    assert "cannot import the feature definitions module 'features'" in missing.output
    assert "Hint:" in missing.output
    write_project(tmp_path)
    unknown = cli.invoke("features", "materialize", "nope")
    assert unknown.exit_code == 1
    assert "no feature view named 'nope'" in unknown.output
    cli.invoke("features", "apply")
    not_yet = cli.invoke("features", "parity", "stats")
    assert not_yet.exit_code == 1
    assert "conveyor features materialize stats" in not_yet.output
    pl.DataFrame(
        {"customer_id": [1], "event_timestamp": [T0], "spend": ["x"], "orders": [1]}
    ).write_parquet(tmp_path / "bad.parquet")
    bad = cli.invoke("features", "ingest", "stats", "bad.parquet")
    assert bad.exit_code == 1
    assert "column 'spend'" in bad.output
