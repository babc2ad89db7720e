"""Materialization: idempotent, resumable after a kill, byte-identical online store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from conveyor.features import Entity, Feature, FeatureView
from conveyor.plugins.features.offline import LocalFeatureStore
from conveyor.plugins.features.online import SQLiteOnlineStore

T0 = datetime(2024, 5, 1, tzinfo=UTC)
END = T0 + timedelta(days=3)
VIEW = FeatureView(
    name="activity",
    entities=[Entity(name="user", join_keys="user_id")],
    features=[
        Feature(name="clicks", dtype="int64"),
        Feature(name="score"),
        Feature(name="segment", dtype="string"),
    ],
    ttl=timedelta(days=30),
)
BATCH = 250


@pytest.fixture
def project(conveyor_app) -> Path:
    """A project with three ingested batches (late rows and duplicates included)."""
    store = conveyor_app.features
    store.apply([VIEW])
    for batch in range(3):
        n = 1200
        store.ingest(
            "activity",
            pl.DataFrame(
                {
                    "user_id": [(i * 7 + batch) % 900 for i in range(n)],
                    "event_timestamp": [
                        T0 + timedelta(minutes=(i * 37 + batch * 11) % 5000) for i in range(n)
                    ],
                    "clicks": [i + batch * n for i in range(n)],
                    "score": [((i * 13) % 101) / 7 for i in range(n)],
                    "segment": [f"s{i % 5}" for i in range(n)],
                }
            ),
        )
    conveyor_app.close()
    return conveyor_app.root


def store_for(app, db: Path) -> LocalFeatureStore:
    return LocalFeatureStore(app=app, online=SQLiteOnlineStore(path=db))


def materialized_bytes(app, db: Path, *, end: datetime = END) -> tuple[bytes, object]:
    store = store_for(app, db)
    report = store.materialize("activity", end=end, batch_size=BATCH)
    store.online.close()
    assert not Path(f"{db}-wal").exists()
    return db.read_bytes(), report


def test_same_window_twice_is_byte_identical(conveyor_app, project: Path) -> None:
    db = project / "a.db"
    first, report = materialized_bytes(conveyor_app, db)
    assert report.rows == 900
    assert report.batches == 4
    second, again = materialized_bytes(conveyor_app, db)
    assert again.rows == 0
    assert second == first
    # an earlier end than the watermark is refused (never silently ignored), and
    # changes nothing
    from conveyor.errors import ValidationError

    with pytest.raises(ValidationError, match="would move it back") as refused:
        materialized_bytes(conveyor_app, db, end=T0)
    assert "--at" in refused.value.hint
    assert db.read_bytes() == first


def test_values_are_the_latest_rows(conveyor_app, project: Path) -> None:
    db = project / "a.db"
    materialized_bytes(conveyor_app, db)
    store = store_for(conveyor_app, db)
    keys = pl.DataFrame({"user_id": list(range(900))})
    online = pl.from_arrow(store.get_online_features(["activity:*"], keys, at=END))
    offline = store.get_historical_features(
        keys.with_columns(pl.lit(END).alias("event_timestamp")), ["activity:*"]
    ).collect()
    assert online.equals(offline.drop("event_timestamp"))
    store.online.close()


KILLER = """
import os, signal, sys
from pathlib import Path
from conveyor.app import Conveyor
from conveyor.plugins.features import online as online_mod
from conveyor.plugins.features.offline import LocalFeatureStore
from datetime import datetime
mode, db, end = sys.argv[1], Path(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
original_write = online_mod.SQLiteOnlineStore.write
original_put = online_mod.SQLiteOnlineStore._put_state
calls = []

def write(self, *args, **kwargs):
    result = original_write(self, *args, **kwargs)
    calls.append(1)
    if mode == "after-commit" and len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return result

def put_state(conn, state):
    original_put(conn, state)
    if mode == "in-transaction" and state.pending_done >= 3 * @BATCH@:
        os.kill(os.getpid(), signal.SIGKILL)  # rows written, COMMIT not reached

online_mod.SQLiteOnlineStore.write = write
online_mod.SQLiteOnlineStore._put_state = staticmethod(put_state)
app = Conveyor.load(cwd=os.getcwd())
store = LocalFeatureStore(app=app, online=online_mod.SQLiteOnlineStore(path=db))
store.materialize("activity", end=end, batch_size=@BATCH@)
print("not killed")
""".replace("@BATCH@", str(BATCH))


@pytest.mark.parametrize("mode", ["after-commit", "in-transaction"])
def test_resume_after_a_kill_is_byte_identical(conveyor_app, project: Path, mode: str) -> None:
    reference, _ = materialized_bytes(conveyor_app, project / "reference.db")
    db = project / "killed.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLER), mode, str(db), END.isoformat()],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr
    assert Path(f"{db}-wal").exists()  # the killed run left its WAL behind
    resumed, report = materialized_bytes(conveyor_app, db)
    assert report.resumed
    assert report.batches == 2  # of 4: two were committed before the kill
    diff = [i for i in range(min(len(resumed), len(reference))) if resumed[i] != reference[i]]
    assert (len(resumed), len(reference), diff[:20]) == (len(reference), len(reference), [])
