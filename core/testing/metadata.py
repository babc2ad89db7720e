"""Conformance suite for metadata-store plugins.

Subclass :class:`MetadataStoreContract` in your plugin's tests and provide the
``store`` fixture (a fresh, empty store per test)::

    class TestMyStore(MetadataStoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            s = MyMetadataStore(...)
            yield s
            s.close()

Model versions enter lineage through ``record_model`` (core calls it after a
registration committed); :mod:`conveyor.testing.registry` also checks it end to
end, with the registry and this store in different databases.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.interfaces.metadata import (
    ArtifactRecord,
    MetadataStore,
    Run,
    StepExecution,
    TriggerEvent,
)
from conveyor.testing.metadata_lineage import SHA_A, SHA_B, LineageContract
from conveyor.testing.metadata_watch import WatchRecordsContract


class MetadataStoreContract(LineageContract, WatchRecordsContract):
    """The behaviour every :class:`~conveyor.interfaces.MetadataStore` must show."""

    @pytest.fixture
    def store(self) -> MetadataStore:
        raise NotImplementedError("a MetadataStoreContract subclass must define `store`")

    # -- runs ----------------------------------------------------------------------------

    def test_run_round_trip(self, store: MetadataStore) -> None:
        event = store.record_trigger_event("manual", "because", details={"who": "me"})
        run_id = store.start_run(
            "train",
            parameters={"lr": 0.1, "rounds": 100},
            trigger_event=event.id,
            code_fingerprint="c0de",
            git_commit="abc123",
        )
        run = store.get_run(run_id)
        assert isinstance(run, Run)
        assert (run.pipeline, run.status, run.ended) == ("train", "running", None)
        assert run.parameters == {"lr": 0.1, "rounds": 100}
        assert run.trigger_event == event.id
        assert (run.code_fingerprint, run.git_commit) == ("c0de", "abc123")
        store.finish_run(run_id, "failed", error="boom")
        run = store.get_run(run_id)
        assert (run.status, run.error) == ("failed", "boom")
        assert run.ended is not None
        assert run.ended >= run.started
        pipeline = store.get_pipeline("train")
        assert (pipeline.code_fingerprint, pipeline.git_commit) == ("c0de", "abc123")
        assert [p.name for p in store.list_pipelines()] == ["train"]

    def test_run_ids_are_unique_and_prefixes_resolve(self, store: MetadataStore) -> None:
        ids = {store.start_run("p") for _ in range(50)}
        assert len(ids) == 50
        some = next(iter(ids))
        assert store.get_run(some[:12]).id == some

    def test_unknown_things_raise_not_found(self, store: MetadataStore) -> None:
        with pytest.raises(NotFoundError):
            store.get_run("nope")
        with pytest.raises(NotFoundError):
            store.finish_run("nope", "succeeded")
        with pytest.raises(NotFoundError):
            store.log_metric("nope", "auc", 0.5)
        with pytest.raises(NotFoundError):
            store.start_step("nope", "s")
        with pytest.raises(NotFoundError):
            store.get_artifact("nope")
        with pytest.raises(NotFoundError):
            store.get_trigger_event("nope")
        with pytest.raises(NotFoundError):
            store.start_run("p", trigger_event="nope")
        with pytest.raises(NotFoundError):
            store.get_pipeline("nope")

    def test_invalid_status_is_refused(self, store: MetadataStore) -> None:
        run_id = store.start_run("p")
        with pytest.raises(ConveyorError):
            store.finish_run(run_id, "running")
        step = store.start_step(run_id, "s")
        with pytest.raises(ConveyorError):
            store.finish_step(step, "done")

    def test_search_runs(self, store: MetadataStore) -> None:
        first = store.start_run("train", parameters={"lr": 0.1})
        store.log_metrics(first, {"auc": 0.7})
        store.finish_run(first, "succeeded")
        second = store.start_run("train", parameters={"lr": 0.2})
        store.log_metrics(second, {"auc": 0.9})
        store.finish_run(second, "failed")
        other = store.start_run("score")
        assert [r.id for r in store.search_runs()] == [other, second, first]
        assert [r.id for r in store.search_runs(pipeline="train")] == [second, first]
        assert [r.id for r in store.search_runs(status="succeeded")] == [first]
        assert [r.id for r in store.search_runs(parameters={"lr": 0.2})] == [second]
        assert [r.id for r in store.search_runs(metrics={"auc": (">=", 0.8)})] == [second]
        assert [r.id for r in store.search_runs(metrics={"auc": ("<", 0.8)})] == [first]
        assert [r.id for r in store.search_runs(limit=1)] == [other]
        future = datetime.now(UTC) + timedelta(days=1)
        assert store.search_runs(started_after=future) == []
        assert len(store.search_runs(started_before=future)) == 3
        assert store.search_runs(pipeline="train")[0].metrics == {"auc": 0.9}
        assert [r.id for r in store.list_runs(pipeline="score")] == [other]
        with pytest.raises(ConveyorError):
            store.search_runs(metrics={"auc": ("~", 1.0)})

    # -- steps and artifacts -------------------------------------------------------------

    def test_steps_record_inputs_outputs_metrics(self, store: MetadataStore) -> None:
        run_id = store.start_run("train")
        data = store.record_artifact("file:///data/a.parquet", SHA_A, kind="dataset", size=10)
        step = store.start_step(run_id, "train", inputs={"table": data}, cache_key="k1")
        finished = store.finish_step(
            step,
            "succeeded",
            outputs={"model": {"uri": "file:///m.txt", "fingerprint": SHA_B, "kind": "model"}},
            metrics={"auc": 0.8},
            logs_uri="file:///logs/train.txt",
        )
        assert isinstance(finished, StepExecution)
        assert finished.inputs == {"table": data}
        assert finished.outputs["model"].uri == "file:///m.txt"
        assert finished.outputs["model"].kind == "model"
        assert finished.metrics == {"auc": 0.8}
        assert (finished.logs_uri, finished.cache_key, finished.cache_hit) == (
            "file:///logs/train.txt",
            "k1",
            False,
        )
        run = store.get_run(run_id)
        assert [s.id for s in run.steps] == [step]
        assert run.steps[0] == store.get_step(step)

    def test_artifact_refs_by_id_info_and_position(self, store: MetadataStore) -> None:
        class Info:  # anything with uri and sha256, like an ArtifactInfo
            uri = "file:///x.bin"
            sha256 = SHA_A
            size = 3
            media_type = "application/octet-stream"

        run_id = store.start_run("p")
        recorded = store.record_artifact("file:///y.bin", SHA_B)
        step = store.start_step(run_id, "s", inputs=[Info(), recorded.id])
        assert [a.uri for a in store.get_step(step).inputs.values()] == [
            "file:///x.bin",
            "file:///y.bin",
        ]
        with pytest.raises(NotFoundError):
            store.start_step(run_id, "s2", inputs=["no-such-artifact"])
        with pytest.raises(ConveyorError):
            store.start_step(run_id, "s3", inputs=[object()])

    def test_artifact_records_are_deduplicated(self, store: MetadataStore) -> None:
        first = store.record_artifact("file:///a", SHA_A, metadata={"rows": 3})
        again = store.record_artifact("file:///a", SHA_A)
        changed = store.record_artifact("file:///a", SHA_B)
        assert isinstance(first, ArtifactRecord)
        assert first == again
        assert first.metadata == {"rows": 3}
        assert changed.id != first.id
        assert store.get_artifact(first.id) == first
        assert {a.id for a in store.find_artifacts(uri="file:///a")} == {first.id, changed.id}
        assert [a.id for a in store.find_artifacts(fingerprint=SHA_B)] == [changed.id]

    def test_find_cached_step(self, store: MetadataStore) -> None:
        run_id = store.start_run("p")
        assert store.find_cached_step("key") is None
        failed = store.start_step(run_id, "s", cache_key="key")
        store.finish_step(failed, "failed", error="x")
        assert store.find_cached_step("key") is None
        good = store.start_step(run_id, "s", cache_key="key")
        store.finish_step(
            good, "succeeded", outputs={"out": {"uri": "file:///o", "fingerprint": SHA_A}}
        )
        hit = store.find_cached_step("key")
        assert hit is not None
        assert hit.id == good
        assert hit.outputs["out"].fingerprint == SHA_A
        reuse = store.start_step(store.start_run("p"), "s", cache_key="key")
        store.finish_step(reuse, "cached", outputs=hit.outputs, cache_hit=True)
        assert store.get_step(reuse).cache_hit is True
        assert store.find_cached_step("other") is None

    # -- metrics -------------------------------------------------------------------------

    def test_metrics_one_by_one_batched_and_series(self, store: MetadataStore) -> None:
        run_id = store.start_run("p")
        store.log_metric(run_id, "loss", 1.0, index=0)
        store.log_metric(run_id, "loss", 0.5, index=1)
        store.log_metrics(run_id, [("loss", 0.25, 2), ("loss", 0.125, 3)])
        store.log_metrics(run_id, {"auc": 0.9, "nan": float("nan")})
        points = store.get_metrics(run_id, key="loss")
        assert [(p.index, p.value) for p in points] == [(0, 1.0), (1, 0.5), (2, 0.25), (3, 0.125)]
        latest = store.get_run(run_id).metrics
        assert latest["loss"] == 0.125
        assert latest["auc"] == 0.9
        assert math.isnan(latest["nan"])
        step = store.start_step(run_id, "s")
        store.log_metrics(run_id, {"rows": 5}, step=step)
        assert [p.value for p in store.get_metrics(run_id, step=step)] == [5.0]
        assert "rows" not in store.get_run(run_id).metrics

    # -- trigger events ------------------------------------------------------------------

    def test_trigger_events_are_idempotent_by_key(self, store: MetadataStore) -> None:
        first = store.record_trigger_event(
            "cron", "slot", key="2024-01-01T00:00", details={"slot": 1}
        )
        again = store.record_trigger_event("cron", "slot again", key="2024-01-01T00:00")
        other = store.record_trigger_event("drift", "psi", key="2024-01-01T00:00")
        keyless = [store.record_trigger_event("manual", "me") for _ in range(2)]
        assert isinstance(first, TriggerEvent)
        assert first.is_new
        assert again.id == first.id
        assert not again.is_new
        assert again.reason == "slot"
        assert other.id != first.id
        assert keyless[0].id != keyless[1].id
        skipped = store.record_trigger_event("drift", "below threshold", fired=False)
        assert store.get_trigger_event(skipped.id).fired is False
        assert [e.id for e in store.list_trigger_events(trigger="cron")] == [first.id]
        assert len(store.list_trigger_events()) == 5

    # -- monitoring results --------------------------------------------------------------

    def _result(
        self,
        kind: str,
        version: int,
        day: int,
        *,
        breached: tuple[str, ...] = (),
        created: datetime | None = None,
        score: float = 0.1,
    ) -> Any:
        from conveyor.monitoring import MonitoringResult

        start = datetime(2024, 3, day, tzinfo=UTC)
        end = start + timedelta(days=1)
        return MonitoringResult(
            id=MonitoringResult.make_id("churn", version, kind, start, end),
            model="churn",
            version=version,
            kind=kind,
            window_start=start,
            window_end=end,
            rows=1000,
            scores={"psi.tenure": score, "ks.tenure": 0.08},
            breached=breached,
            details={"reference": "profile", "windows": [{"start": start.isoformat()}]},
            created=created or datetime.now(UTC),
        )

    def test_monitoring_results_round_trip_and_list_newest_first(
        self, store: MetadataStore
    ) -> None:
        base = datetime(2024, 3, 10, tzinfo=UTC)
        older = self._result("drift", 3, 1, created=base)
        newer = self._result(
            "drift", 3, 2, breached=("ks.tenure",), created=base + timedelta(hours=1)
        )
        skew = self._result("skew", 3, 2, created=base + timedelta(hours=2))
        other = self._result("drift", 4, 2, created=base + timedelta(hours=3))
        for result in (older, newer, skew, other):
            stored = store.record_monitoring_result(result)
            assert stored == result
        assert store.get_monitoring_result(newer.id) == newer
        assert [
            r.id for r in store.list_monitoring_results(model="churn", version=3, kind="drift")
        ] == [newer.id, older.id]
        assert [r.id for r in store.list_monitoring_results(model="churn")] == [
            other.id,
            skew.id,
            newer.id,
            older.id,
        ]
        assert [r.id for r in store.list_monitoring_results(model="churn", limit=1)] == [other.id]
        assert store.list_monitoring_results(model="nobody") == []
        with pytest.raises(NotFoundError):
            store.get_monitoring_result("drift:nobody:1:x:y")

    def test_a_recomputed_window_replaces_its_result(self, store: MetadataStore) -> None:
        first = self._result("performance", 3, 1, created=datetime(2024, 3, 2, tzinfo=UTC))
        again = self._result(
            "performance",
            3,
            1,
            breached=("auc",),
            score=0.4,
            created=datetime(2024, 3, 3, tzinfo=UTC),
        )
        assert first.id == again.id
        store.record_monitoring_result(first)
        store.record_monitoring_result(again)
        listed = store.list_monitoring_results(model="churn", kind="performance")
        assert listed == [again]
        assert listed[0].breached == ("auc",)
        assert listed[0].scores["psi.tenure"] == 0.4

    # -- definitions ---------------------------------------------------------------------

    def test_definitions_version_only_on_change(self, store: MetadataStore) -> None:
        first = store.put_definition("feature_view", "customer", {"ttl": 30, "features": ["a"]})
        same = store.put_definition("feature_view", "customer", {"features": ["a"], "ttl": 30})
        changed = store.put_definition("feature_view", "customer", {"ttl": 7, "features": ["a"]})
        store.put_definition("feature_view", "orders", {"ttl": 1})
        store.put_definition("entity", "customer", {"key": "id"})
        assert (first.version, same.version, changed.version) == (1, 1, 2)
        assert store.get_definition("feature_view", "customer").spec["ttl"] == 7
        assert store.get_definition("feature_view", "customer", 1).spec["ttl"] == 30
        assert [(d.name, d.version) for d in store.list_definitions("feature_view")] == [
            ("customer", 2),
            ("orders", 1),
        ]
        assert [d.version for d in store.definition_history("feature_view", "customer")] == [1, 2]
        with pytest.raises(NotFoundError):
            store.get_definition("feature_view", "customer", 3)
        with pytest.raises(NotFoundError):
            store.get_definition("entity", "nope")

    def test_concurrent_threads_do_not_lose_writes(self, store: MetadataStore) -> None:
        run_id = store.start_run("p")
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(25):
                    store.log_metric(run_id, f"t{n}", float(i), index=i)
                    store.put_definition("kind", "shared", {"writer": n, "i": i})
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(store.get_metrics(run_id)) == 100
        versions = [d.version for d in store.definition_history("kind", "shared")]
        assert versions == list(range(1, len(versions) + 1))
