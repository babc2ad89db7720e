"""`conveyor trigger fire`, the manual trigger, the lease rules and the reason in lineage."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.interfaces.metadata import ModelRecord
from conveyor.plugins.triggers.manual import ManualConfig, ManualTrigger
from conveyor.testing.triggers import TriggerContract
from conveyor.triggers import evaluate
from conveyor.watch import Watcher

from .conftest import PIPELINE, StepClock

T0 = datetime(2024, 3, 31, 0, 55, tzinfo=UTC)
CONFIG = (
    '[pipelines.training]\ntarget = "pipe:training"\n'
    '[triggers.by-hand]\nbackend = "manual"\npipeline = "training"\n'
)


class TestManualTrigger(TriggerContract):
    @pytest.fixture
    def trigger(self):
        return ManualTrigger(app=None, config=ManualConfig()).request("ci", by="ci", key="k1")


def test_trigger_fire_runs_with_the_reason_recorded_and_in_lineage(cli, tmp_path):
    (tmp_path / "pipe.py").write_text(PIPELINE)
    (tmp_path / "conveyor.toml").write_text(CONFIG)
    done = cli.invoke(
        "trigger", "fire", "training", "--reason", "new labels", "--key", "req-1", "--json"
    )
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output)
    assert (summary["trigger"], summary["status"], summary["run_status"]) == (
        "by-hand",
        "fired",
        "succeeded",
    )
    again = cli.invoke(
        "trigger", "fire", "training", "--reason", "retry", "--key", "req-1", "--json"
    )
    assert again.exit_code == 1
    assert json.loads(again.output)["status"] == "not_due", "one key fires once"

    from conveyor.plugins.sqlite.metadata import SQLiteMetadataStore

    store = SQLiteMetadataStore(path=tmp_path / ".conveyor" / "conveyor.db")
    run = store.get_run(summary["run_id"])
    event = store.get_trigger_event(run.trigger_event)
    assert (event.trigger, event.key, event.details["requested"]) == (
        "by-hand",
        "req-1",
        "new labels",
    )
    store.record_model(
        ModelRecord(
            model="churn",
            version=1,
            artifact_uri="file:///m.txt",
            sha256="c" * 64,
            run_id=run.id,
            created=T0,
        )
    )
    store.close()
    tree = cli.invoke("lineage", "churn:1", "--json")
    assert tree.exit_code == 0, tree.output
    graph = json.loads(tree.output)
    trigger_nodes = [n for n in graph["nodes"] if n["id"] == f"trigger:{event.id}"]
    assert trigger_nodes, "the model's lineage says why it was trained"
    history = cli.invoke("triggers", "history", "by-hand", "--json")
    assert [r["run_id"] for r in json.loads(history.output)] == [run.id]


def test_trigger_fire_without_a_manual_binding_says_how_to_add_one(cli, tmp_path):
    (tmp_path / "pipe.py").write_text(PIPELINE)
    (tmp_path / "conveyor.toml").write_text('[pipelines.training]\ntarget = "pipe:training"\n')
    done = cli.invoke("trigger", "fire", "training", "--reason", "why")
    assert done.exit_code != 0
    assert "no manual trigger is bound to pipeline 'training'" in done.output
    assert '[triggers.manual] backend = "manual"' in done.output


EVERY10 = '[triggers.every10]\nbackend = "interval"\nevery = "10m"\npipeline = "training"\n'


def test_a_held_lease_refuses_another_holder_until_it_lapses(project):
    app = project(EVERY10)
    first = evaluate(app, "every10", T0, holder="a", lease_ttl=timedelta(minutes=10))
    assert first.fired
    assert (first.lease.holder, first.lease.key) == ("a", first.event.id)
    refused = evaluate(
        app, "every10", T0 + timedelta(minutes=5), holder="b", lease_ttl=timedelta(minutes=10)
    )
    assert refused.status == "running"
    assert "a holds the lease" in refused.reason
    # "a" died before starting the run: its lease lapses, and the next watcher
    # starts that firing's run once (neither missed nor repeated)
    clock = StepClock(T0 + timedelta(minutes=11))
    watcher = Watcher(app=app, clock=clock, holder="b", names=["every10"])
    watcher.tick()
    runs = app.metadata.search_runs(trigger_event=first.event.id)
    assert [r.status for r in runs] == ["succeeded"]
    assert watcher.launches[0].event_id == first.event.id, "resumed first"
    assert len(watcher.launches) == 2, "then the 01:00 slot, refused while leased, fires"
    watcher.tick()
    assert len(app.metadata.search_runs(pipeline="training")) == 2
    assert app.metadata.get_lease("pipeline:training") is None


def test_a_lapsed_lease_records_its_run_interrupted(project):
    app = project(EVERY10)
    first = evaluate(app, "every10", T0, holder="a", lease_ttl=timedelta(minutes=10))
    run_id = app.metadata.start_run("training", trigger_event=first.event.id)
    # before the lease lapses the run is someone's: single flight holds
    assert (
        evaluate(
            app, "every10", T0 + timedelta(minutes=5), holder="b", lease_ttl=timedelta(minutes=10)
        ).status
        == "running"
    )
    assert app.metadata.get_run(run_id).status == "running"
    later = evaluate(app, "every10", T0 + timedelta(hours=1), holder="b")
    assert app.metadata.get_run(run_id).status == "interrupted"
    assert later.status == "fired"
