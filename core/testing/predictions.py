"""The prediction-log suite: :mod:`conveyor.predictions` on one artifact store.

The prediction log is core code over the artifact store, so this suite checks
that a store supports it: subclass :class:`PredictionLogContract` and provide the
``store`` fixture (a fresh, empty artifact store per test)::

    class TestPredictionLogOnMyStore(PredictionLogContract):
        @pytest.fixture
        def store(self, tmp_path):
            return MyArtifactStore(...)
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from conveyor.artifacts import ArtifactStore
from conveyor.errors import ConveyorError
from conveyor.predictions import PredictionLog, prediction_keys, scan_predictions

T0 = datetime(2024, 3, 30, 23, 0, tzinfo=UTC)


def _features(rows: int, offset: int = 0) -> dict[str, list[Any]]:
    return {
        "tenure": [float(offset + i) for i in range(rows)],
        "plan": [("basic", "pro")[(offset + i) % 2] for i in range(rows)],
    }


class PredictionLogContract:
    """The behaviour :class:`~conveyor.predictions.PredictionLog` must show on a store."""

    @pytest.fixture
    def store(self) -> ArtifactStore:
        raise NotImplementedError("subclass PredictionLogContract and define `store`")

    def log(self, store: ArtifactStore, **options: Any) -> PredictionLog:
        """A log that writes only when flushed (unless options say otherwise)."""
        options = {"flush_interval": 60.0, "flush_records": 1_000_000, **options}
        return PredictionLog(store, **options)

    def test_round_trip(self, store: ArtifactStore) -> None:
        with self.log(store) as log:
            assert log.append(
                model="churn",
                version=3,
                features=_features(3),
                predictions=np.array([0.1, 0.5, 0.9]),
                request_ids="req-1",
                entity_keys=["a", "b", None],
                time=T0,
            )
            assert log.append(
                model="churn",
                version=3,
                features=pl.DataFrame(_features(2, offset=3)),
                predictions=[0.2, 0.3],
                request_ids=["req-2", "req-3"],
                time=T0,
            )
        stats = log.stats()
        assert (stats.accepted, stats.written, stats.dropped, stats.failed, stats.pending) == (
            5,
            5,
            0,
            0,
            0,
        )
        assert stats.objects == 1, "batches of one model/version/day go into one object"
        frame = scan_predictions(store, model="churn").sort("features").collect()
        assert frame.columns == [
            "request_id",
            "time",
            "model",
            "version",
            "features",
            "prediction",
            "entity_key",
        ]
        assert frame["request_id"].to_list() == ["req-1"] * 3 + ["req-2", "req-3"]
        assert frame["time"].to_list() == [T0] * 5
        assert set(frame["model"]) == {"churn"}
        assert set(frame["version"]) == {3}
        assert frame["features"].struct.field("tenure").to_list() == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert frame["features"].struct.field("plan").to_list()[:2] == ["basic", "pro"]
        assert frame["prediction"].to_list() == [0.1, 0.5, 0.9, 0.2, 0.3]
        assert frame["entity_key"].to_list() == ["a", "b", None, None, None]
        assert frame.schema["time"] == pl.Datetime("us", "UTC")

    def test_multi_class_predictions_are_lists(self, store: ArtifactStore) -> None:
        with self.log(store) as log:
            log.append(
                model="kind",
                version=1,
                features=_features(2),
                predictions=np.array([[0.2, 0.8], [0.6, 0.4]]),
                time=T0,
            )
        frame = scan_predictions(store, model="kind", version=1).collect()
        assert frame.schema["prediction"] == pl.List(pl.Float64)
        assert frame["prediction"].to_list() == [[0.2, 0.8], [0.6, 0.4]]
        assert frame["request_id"].n_unique() == 1, "one fresh id per batch by default"

    def test_scan_filters_by_model_version_and_time(self, store: ArtifactStore) -> None:
        with self.log(store) as log:
            for version, model in ((1, "churn"), (2, "churn"), (1, "fraud")):
                for hours in range(4):  # 23:00 .. 02:00 UTC: two dates
                    log.append(
                        model=model,
                        version=version,
                        features=_features(1),
                        predictions=[float(hours)],
                        request_ids=f"{model}{version}h{hours}",
                        time=T0 + timedelta(hours=hours),
                    )

        def ids(**filters: Any) -> set[str]:
            return set(scan_predictions(store, **filters).collect()["request_id"])

        assert len(ids()) == 12
        assert ids(model="fraud") == {f"fraud1h{h}" for h in range(4)}
        assert ids(model="churn", version=2) == {f"churn2h{h}" for h in range(4)}
        start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
        assert ids(model="churn", version=1, start=start, end=end) == {"churn1h1", "churn1h2"}
        berlin = start.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
        assert ids(model="churn", version=1, start=berlin) == {"churn1h1", "churn1h2", "churn1h3"}
        # only objects of matching partitions are opened
        keys = prediction_keys(store, model="churn", version=1, start=T0 + timedelta(hours=2))
        assert keys
        assert all("date=2024-03-31" in key for key, _ in keys)
        assert ids(model="nobody") == set()
        with pytest.raises(ConveyorError, match="needs the model"):
            scan_predictions(store, version=1)
        with pytest.raises(ConveyorError, match="timezone-aware"):
            scan_predictions(store, start=datetime(2024, 1, 1))

    def test_an_empty_log_scans_to_an_empty_frame(self, store: ArtifactStore) -> None:
        frame = scan_predictions(store, model="churn").collect()
        assert frame.height == 0
        assert {"request_id", "time", "model", "version", "prediction"} <= set(frame.columns)

    def test_concurrent_appenders(self, store: ArtifactStore) -> None:
        logs = [self.log(store, flush_records=40, flush_interval=0.05) for _ in range(2)]

        def work(worker: int) -> None:
            log = logs[worker % 2]
            for i in range(25):
                assert log.append(
                    model="churn",
                    version=1,
                    features=_features(4, i),
                    predictions=[0.5] * 4,
                    request_ids=f"w{worker}-{i}",
                )

        threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for log in logs:
            log.close()
        assert sum(log.stats().written for log in logs) == 8 * 25 * 4
        frame = scan_predictions(store, model="churn").collect()
        counts = frame.group_by("request_id").len()
        assert counts.height == 8 * 25
        assert set(counts["len"]) == {4}

    def test_a_full_queue_drops_and_counts_instead_of_blocking(self, store: ArtifactStore) -> None:
        log = self.log(store, max_pending=10)
        accepted = [
            log.append(model="churn", version=1, features=_features(4), predictions=[0.1] * 4)
            for _ in range(3)
        ]
        assert accepted == [True, True, False]
        assert (log.stats().dropped, log.stats().pending) == (4, 8)
        log.close()
        assert (log.stats().written, log.stats().dropped) == (8, 4)
        assert scan_predictions(store).collect().height == 8
        with pytest.raises(ConveyorError, match="closed"):
            log.append(model="churn", version=1, features=_features(1), predictions=[0.1])

    def test_writes_happen_in_the_background(self, store: ArtifactStore) -> None:
        log = self.log(store, flush_interval=0.05)
        log.append(model="churn", version=1, features=_features(2), predictions=[0.1, 0.2])
        deadline = time.monotonic() + 10
        while log.stats().written < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert log.stats().written == 2, "no flush call, yet the interval wrote the batch"
        log.close()

    def test_a_batch_after_an_idle_spell_is_written_by_the_interval_too(
        self, store: ArtifactStore
    ) -> None:
        """The writer idles without a deadline once its queue is empty: the next batch
        must wake it, or that batch waits for the close."""
        log = self.log(store, flush_interval=0.05)
        for expected in (1, 2):
            log.append(model="churn", version=1, features=_features(1), predictions=[0.1])
            deadline = time.monotonic() + 10
            while log.stats().written < expected and time.monotonic() < deadline:
                time.sleep(0.01)
            assert log.stats().written == expected, f"batch {expected} waited for the close"
            time.sleep(0.2)  # the writer goes idle
        log.close()

    def test_readers_never_see_part_of_a_batch(self, store: ArtifactStore) -> None:
        log = self.log(store, flush_records=20, flush_interval=0.01)
        seen: list[pl.DataFrame] = []
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                seen.append(scan_predictions(store, model="churn").collect())

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for i in range(60):
                log.append(
                    model="churn",
                    version=1,
                    features=_features(5, i),
                    predictions=[0.5] * 5,
                    request_ids=f"r{i}",
                )
                time.sleep(0.002)
            log.close()
        finally:
            stop.set()
            reader.join()
        assert seen, "the reader ran"
        for frame in seen:
            if frame.height:
                assert set(frame.group_by("request_id").len()["len"]) == {5}
        assert scan_predictions(store, model="churn").collect().height == 300

    def test_a_batch_that_cannot_be_stored_is_counted_and_others_are_written(
        self, store: ArtifactStore
    ) -> None:
        with self.log(store) as log:
            log.append(
                model="churn",
                version=1,
                features=_features(2),
                predictions=[0.1, 0.2],
                request_ids="good",
            )
            ragged: dict[str, list[Any]] = {"tenure": [1.0, 2.0], "plan": ["basic"]}  # one short
            log.append(
                model="churn", version=1, features=ragged, predictions=[0.3, 0.4], request_ids="bad"
            )
        assert (log.stats().written, log.stats().failed) == (2, 2)
        assert set(scan_predictions(store).collect()["request_id"]) == {"good"}

    def test_bad_appends_are_refused_at_once(self, store: ArtifactStore) -> None:
        with self.log(store) as log:
            with pytest.raises(ConveyorError, match="2 predictions but 3 feature rows"):
                log.append(model="churn", version=1, features=_features(3), predictions=[0.1, 0.2])
            with pytest.raises(ConveyorError, match="timezone-aware"):
                log.append(
                    model="churn",
                    version=1,
                    features=_features(1),
                    predictions=[0.1],
                    time=datetime(2024, 1, 1),
                )
            with pytest.raises(ConveyorError, match="refused"):
                log.append(model="../etc", version=1, features=_features(1), predictions=[0.1])
        assert log.stats().accepted == 0

    def test_a_log_written_by_other_means_is_read(self, store: ArtifactStore) -> None:
        foreign = pl.DataFrame(
            {
                "request_id": ["x1", "x2"],
                "time": [datetime(2024, 5, 1, 12), datetime(2024, 5, 1, 13)],  # naive: UTC
                "model": ["churn", "churn"],
                "version": [7, 7],
                "features": pl.DataFrame(_features(2)).to_struct("features"),
                "prediction": [0.25, 0.75],
            }
        ).with_columns(pl.col("time").dt.cast_time_unit("ns"))
        store.put_table(
            "predictions/model=churn/version=7/date=2024-05-01/batch-1.parquet", foreign
        )
        frame = scan_predictions(
            store, model="churn", version=7, start=datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
        ).collect()
        assert frame["request_id"].to_list() == ["x2"]
        assert frame.schema["time"] == pl.Datetime("us", "UTC")
