"""Conformance tests of the metadata store's lineage: model records, feature-view use
and graph traversal (part of :class:`~conveyor.testing.metadata.MetadataStoreContract`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.interfaces.metadata import (
    FeatureViewUse,
    LineageGraph,
    MetadataStore,
    ModelRecord,
)

SHA_A = "a" * 64
SHA_B = "b" * 64


class LineageContract:
    """Lineage as ``conveyor lineage`` and the registry rely on it."""

    def _pipeline(self, store: MetadataStore) -> dict[str, Any]:
        event = store.record_trigger_event("drift", "psi 0.3")
        run_id = store.start_run("train", trigger_event=event.id)
        raw = store.record_artifact("file:///raw.csv", SHA_A, kind="dataset")
        ingest = store.start_step(run_id, "ingest", inputs={"raw": raw})
        table = store.finish_step(
            ingest,
            "succeeded",
            outputs={"table": {"uri": "file:///table.parquet", "fingerprint": SHA_B}},
        ).outputs["table"]
        train = store.start_step(run_id, "train", inputs={"table": table})
        model = store.finish_step(
            train,
            "succeeded",
            outputs={"model": {"uri": "file:///model.txt", "fingerprint": "c" * 64}},
        ).outputs["model"]
        unrelated = store.start_step(run_id, "report", inputs={})
        store.finish_step(
            unrelated,
            "succeeded",
            outputs={"report": {"uri": "file:///report.html", "fingerprint": "d" * 64}},
        )
        return {
            "event": event.id,
            "run": run_id,
            "raw": raw.id,
            "table": table.id,
            "model": model.id,
            "ingest": ingest,
            "train": train,
            "report": unrelated,
        }

    def test_lineage_upstream_of_an_artifact(self, store: MetadataStore) -> None:
        ids = self._pipeline(store)
        graph = store.lineage(f"artifact:{ids['model']}")
        assert isinstance(graph, LineageGraph)
        assert set(graph.nodes) == {
            f"artifact:{ids['model']}",
            f"step:{ids['train']}",
            f"artifact:{ids['table']}",
            f"step:{ids['ingest']}",
            f"artifact:{ids['raw']}",
            f"run:{ids['run']}",
        }
        relations = {(e.src, e.dst, e.relation) for e in graph.edges}
        assert (f"artifact:{ids['raw']}", f"step:{ids['ingest']}", "input") in relations
        assert (f"step:{ids['train']}", f"artifact:{ids['model']}", "output") in relations
        assert graph.to_dict()["root"] == f"artifact:{ids['model']}"

    def test_lineage_downstream_and_from_runs(self, store: MetadataStore) -> None:
        ids = self._pipeline(store)
        down = store.lineage(f"artifact:{ids['raw']}", direction="downstream")
        assert f"artifact:{ids['model']}" in down.nodes
        assert f"step:{ids['report']}" not in down.nodes
        from_run = store.lineage(f"run:{ids['run']}")
        assert {
            f"trigger:{ids['event']}",
            f"artifact:{ids['raw']}",
            f"step:{ids['report']}",
        } <= set(from_run.nodes)
        from_event = store.lineage(f"trigger:{ids['event']}", direction="downstream")
        assert f"artifact:{ids['model']}" in from_event.nodes
        shallow = store.lineage(f"artifact:{ids['model']}", depth=1)
        assert shallow.truncated
        assert f"artifact:{ids['raw']}" not in shallow.nodes
        with pytest.raises(NotFoundError):
            store.lineage("artifact:nope")
        with pytest.raises(ConveyorError):
            store.lineage("bogus")

    def test_model_records_join_the_graph_idempotently(self, store: MetadataStore) -> None:
        from conveyor.interfaces.registry import DatasetRef

        ids = self._pipeline(store)
        model_file = store.get_artifact(ids["model"])
        record = ModelRecord(
            model="churn",
            version=3,
            artifact_uri=model_file.uri,
            sha256=model_file.fingerprint,
            run_id=ids["run"],
            created=datetime(2024, 5, 1, tzinfo=UTC),
            datasets=[
                DatasetRef(uri="file:///table.parquet", fingerprint=SHA_B),
                DatasetRef(
                    uri="file:///holdout.parquet",
                    fingerprint="e" * 64,
                    role="holdout",
                    start=datetime(2024, 4, 1, tzinfo=UTC),
                ),
            ],
        )
        store.record_model(record)
        store.record_model(record)  # again: nothing changes
        up = store.lineage("model:churn:3")
        node = up.nodes["model:churn:3"]
        assert (node.kind, node.label) == ("model", "churn v3")
        assert node.attributes["sha256"] == model_file.fingerprint
        edges = sorted((e.src, e.relation) for e in up.edges if e.dst == "model:churn:3")
        holdout = store.find_artifacts(uri="file:///holdout.parquet")
        assert [a.kind for a in holdout] == ["dataset"]
        assert edges == sorted(
            [
                (f"artifact:{ids['model']}", "registered_as"),
                (f"run:{ids['run']}", "produced"),
                (f"artifact:{ids['table']}", "trained_on"),
                (f"artifact:{holdout[0].id}", "trained_on"),
            ]
        )
        assert len(up.edges) == len({(e.src, e.dst, e.relation) for e in up.edges})
        assert f"artifact:{ids['raw']}" in up.nodes  # upstream continues through the run
        down = store.lineage(f"artifact:{ids['raw']}", direction="downstream")
        assert "model:churn:3" in down.nodes
        assert "model:churn:3" in store.lineage(f"run:{ids['run']}", direction="downstream").nodes
        with pytest.raises(NotFoundError):
            store.lineage("model:churn:4")

    def test_model_records_name_the_feature_views_they_trained_on(
        self, store: MetadataStore
    ) -> None:
        weather_v1 = store.put_definition("feature_view", "weather", {"features": ["temp"]})
        weather_v2 = store.put_definition(
            "feature_view", "weather", {"features": ["temp", "precip"]}
        )
        uses = [
            FeatureViewUse(view="weather", version=weather_v2.version, features=["temp", "precip"]),
            FeatureViewUse(view="aircraft", version=1, features=["seats"]),
        ]
        created = datetime(2024, 5, 1, tzinfo=UTC)
        record = ModelRecord(
            model="late",
            version=1,
            artifact_uri="file:///m1.txt",
            sha256=SHA_A,
            created=created,
            features=uses,
        )
        store.record_model(record)
        store.record_model(record)  # again: nothing changes
        store.record_model(
            ModelRecord(
                model="late",
                version=2,
                artifact_uri="file:///m2.txt",
                sha256=SHA_B,
                created=created,
                features=uses[:1],
            )
        )
        store.record_model(
            ModelRecord(
                model="plain",
                version=1,
                artifact_uri="file:///p.txt",
                sha256="c" * 64,
                created=created,
            )
        )
        assert store.model_features("late", 1) == tuple(uses)  # order kept
        assert store.model_features("late", 1)[0].refs == ["weather:temp", "weather:precip"]
        assert store.model_features("late", 2) == tuple(uses[:1])
        assert store.model_features("plain", 1) == ()
        with pytest.raises(NotFoundError):
            store.model_features("late", 3)
        up = store.lineage("model:late:1", depth=1)
        view_node = f"feature_view:weather:{weather_v2.version}"
        assert {(e.src, e.relation) for e in up.edges if e.relation == "definition"} == {
            (view_node, "definition"),
            ("feature_view:aircraft:1", "definition"),
        }
        node = up.nodes[view_node]
        assert (node.kind, node.label) == ("feature_view", f"weather v{weather_v2.version}")
        assert node.attributes["fingerprint"] == weather_v2.fingerprint
        assert f"feature_view:weather:{weather_v1.version}" not in up.nodes
        down = store.lineage(view_node, direction="downstream")
        assert {"model:late:1", "model:late:2"} <= set(down.nodes)
        assert "model:plain:1" not in down.nodes
        assert set(store.lineage("feature_view:aircraft:1", direction="downstream").nodes) == {
            "feature_view:aircraft:1",
            "model:late:1",
        }
        with pytest.raises(NotFoundError):
            store.lineage(f"feature_view:weather:{weather_v1.version}", direction="downstream")
