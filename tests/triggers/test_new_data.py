"""The new_data trigger: settled files only, min rows, one run per burst, local and S3."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conveyor.plugins.triggers.new_data import NewDataConfig, NewDataTrigger
from conveyor.testing.artifacts import moto_s3_endpoint  # noqa: F401 - a fixture
from conveyor.testing.triggers import TriggerContract, fired_event
from conveyor.watch import Watcher

from .conftest import StepClock

NOW = datetime.now(UTC).replace(microsecond=0)


def write_csv(path: Path, rows: int, *, age: timedelta) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(rows)))
    stamp = (NOW - age).timestamp()
    os.utime(path, (stamp, stamp))


def half_written_parquet(path: Path) -> None:
    """The first half of a real Parquet file: its footer is missing, reading it fails."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    whole = path.with_suffix(".tmp")
    pq.write_table(pa.table({"a": list(range(1000))}), whole)
    data = whole.read_bytes()
    whole.unlink()
    path.write_bytes(data[: len(data) // 2])  # its mtime is now: it is being written


class TestNewDataTrigger(TriggerContract):
    @pytest.fixture
    def trigger(self, tmp_path):
        for n in range(3):
            write_csv(tmp_path / "in" / f"part-{n}.csv", 5, age=timedelta(days=3000))
        return NewDataTrigger(
            app=None, config=NewDataConfig(uri=str(tmp_path / "in"), settle=timedelta(0))
        )


def test_a_burst_of_50_files_starts_one_run_and_a_file_being_written_is_not_read(project, tmp_path):
    incoming = tmp_path / "incoming"
    for n in range(50):
        write_csv(incoming / f"day=1/part-{n:02}.csv", 20, age=timedelta(minutes=10))
    write_csv(incoming / "_SUCCESS", 0, age=timedelta(minutes=10))
    half_written_parquet(incoming / "day=1" / "part-50.parquet")
    app = project(
        f'[triggers.fresh]\nbackend = "new_data"\nuri = "{incoming}"\n'
        'settle = "2m"\nmin_rows = 100\npipeline = "training"\n'
    )
    clock = StepClock(NOW)
    watcher = Watcher(app=app, clock=clock)
    outcomes = watcher.tick()
    assert [o.status for o in outcomes] == ["fired", "not_due"]
    fired = outcomes[0].event
    assert (fired.details["files"], fired.details["rows"], fired.details["settling"]) == (
        50,
        1000,
        1,
    )
    assert "1 file(s) still settling" in fired.reason
    runs = app.metadata.search_runs(pipeline="training")
    assert [r.trigger_event for r in runs] == [fired.id]
    assert runs[0].status == "succeeded"
    clock.advance(minutes=1)
    assert [o.status for o in watcher.tick()] == ["not_due"], "the same files fire once"
    # the writer finishes: the file settles, and it alone is new (1000 rows >= 100)
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = incoming / "day=1" / "part-50.parquet"
    pq.write_table(pa.table({"a": list(range(1000))}), done)
    stamp = (clock.now() - timedelta(minutes=3)).timestamp()
    os.utime(done, (stamp, stamp))
    second = watcher.tick()
    assert second[0].status == "fired"
    assert (second[0].event.details["files"], second[0].event.details["rows"]) == (1, 1000)
    assert second[0].event.details["sample"] == [str(done)]
    assert len(app.metadata.search_runs(pipeline="training")) == 2


def test_fewer_rows_than_min_rows_wait_for_more(tmp_path):
    folder = tmp_path / "in"
    for n in range(3):
        write_csv(folder / f"{n}.csv", 2, age=timedelta(hours=1))
    trigger = NewDataTrigger(
        app=None, config=NewDataConfig(uri=str(folder), min_rows=10, pattern="*.csv")
    )
    waiting = trigger.evaluate(NOW, None)
    assert not waiting.fire
    assert "6 row(s)" in waiting.reason
    assert "fewer than min_rows = 10" in waiting.reason
    write_csv(folder / "3.csv", 4, age=timedelta(hours=1))
    write_csv(folder / "ignored.txt", 100, age=timedelta(hours=1))
    ready = trigger.evaluate(NOW, None)
    assert ready.fire
    assert (ready.details["files"], ready.details["rows"]) == (4, 10)
    assert not trigger.evaluate(NOW, fired_event(ready, NOW)).fire
    # rewritten content is new content
    write_csv(folder / "1.csv", 12, age=timedelta(minutes=30))
    again = trigger.evaluate(NOW, fired_event(ready, NOW))
    assert again.fire
    assert again.details["sample"] == [str(folder / "1.csv")]
    assert again.key != ready.key


def test_new_files_under_an_s3_prefix(moto_s3_endpoint):  # noqa: F811
    import pyarrow as pa
    import pyarrow.parquet as pq
    import s3fs

    options = {
        "key": "testing",
        "secret": "testing-secret",
        "endpoint_url": moto_s3_endpoint,
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
    bucket = f"new-data-{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    for n in range(3):
        with fs.open(f"{bucket}/raw/part-{n}.parquet", "wb") as handle:
            pq.write_table(pa.table({"x": list(range(10 * (n + 1)))}), handle)
    trigger = NewDataTrigger(
        app=None,
        config=NewDataConfig(
            uri=f"s3://{bucket}/raw", settle=timedelta(seconds=30), storage_options=options
        ),
    )
    written = datetime.now(UTC)
    assert not trigger.evaluate(written, None).fire, "just written: still settling"
    decision = trigger.evaluate(written + timedelta(minutes=1), None)
    assert decision.fire
    assert (decision.details["files"], decision.details["rows"]) == (3, 60)
