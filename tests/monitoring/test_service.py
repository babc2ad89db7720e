"""Monitoring end to end: a logged model, stored results, lifecycle events, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from conveyor import hookimpl
from conveyor.errors import ConveyorError
from conveyor.ml.profile import infer_profile
from conveyor.models.signature import FeatureSpec, Signature
from conveyor.monitoring.estimate import store_calibration
from conveyor.monitoring.service import monitor_drift, monitor_performance, parse_since
from conveyor.predictions import PredictionLog

from ._data import frame, probability, scores

DAY = timedelta(days=1)
START = datetime(2024, 3, 1, tzinfo=UTC)
SIGNATURE = Signature(
    features=[FeatureSpec(name=n, dtype="float64") for n in ("x0", "x1", "x2")]
    + [
        FeatureSpec(name="plan", dtype="string"),
        FeatureSpec(name="joined", dtype="float64"),
    ],  # never logged
    label="churned",
    objective="binary",
)


class Events:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    @hookimpl
    def on_drift_detected(self, app: Any, event: Any) -> None:
        self.seen.append(event)

    @hookimpl
    def on_performance_decayed(self, app: Any, event: Any) -> None:
        self.seen.append(event)


def build(
    app: Any, tmp_path: Path, *, days: int = 14, shift_from: int = 7, flip_labels: bool = False
) -> dict[str, Any]:
    """Register churn v1 (profile, calibration, validation AUC) and log ``days`` days of
    predictions, ``x0`` shifted by 0.5 sd from day ``shift_from``; labels to Parquet."""
    rng = np.random.default_rng(42)
    train = frame(rng, 20_000)
    holdout_p = probability(frame(rng, 20_000))
    holdout_y = (rng.random(holdout_p.size) < holdout_p).astype(int)
    text = b"tree\nversion=v4\n"  # the model's bytes are not read by monitoring
    info = app.artifacts.put_bytes("models/churn/m.txt", text)
    profile = app.artifacts.put_bytes(
        "models/churn/profile.json", infer_profile(train).to_json().encode()
    )
    store_calibration(app.artifacts, "churn", info.sha256, holdout_y, scores(holdout_p))
    from conveyor.monitoring.stats import auc_delong

    auc = auc_delong(holdout_y, scores(holdout_p))[0]
    app.registry.register(
        "churn",
        artifact_uri=info.uri,
        sha256=info.sha256,
        signature=SIGNATURE,
        profile_uri=profile.uri,
        metrics={"auc": auc},
        actor="test",
    )
    labels = []
    with PredictionLog(app.artifacts) as log:
        for day in range(days):
            for hour in range(0, 24, 6):  # four batches a day
                at = START + day * DAY + timedelta(hours=hour)
                data = frame(rng, 1000, shift=0.5 if day >= shift_from else 0.0)
                p = probability(data)
                ids = [f"{day}-{hour}-{i}" for i in range(data.height)]
                log.append(
                    model="churn",
                    version=1,
                    features=data,
                    predictions=scores(p),
                    request_ids=ids,
                    time=at,
                )
                y = (rng.random(p.size) < p).astype(int)
                labels.append(
                    pl.DataFrame({"request_id": ids, "churned": 1 - y if flip_labels else y})
                )
    path = tmp_path / "labels.parquet"
    pl.concat(labels).write_parquet(path)
    return {"labels": str(path), "until": START + days * DAY, "auc": auc}


@pytest.fixture
def events(register_plugin: Any) -> Events:
    found = Events()
    register_plugin(found, "monitoring-events")
    return found


def test_drift_between_weeks_is_stored_and_fires_the_event(
    conveyor_app: Any, tmp_path: Path, events: Events
) -> None:
    facts = build(conveyor_app, tmp_path)
    until = facts["until"]
    monitored = monitor_drift(conveyor_app, "churn", since=until - 7 * DAY, until=until)
    result = monitored.result
    assert result.kind == "drift" and result.rows == 28_000
    assert "ks.x0" in result.breached
    assert {name.split(".", 1)[1] for name in result.breached} == {"x0"}
    assert monitored.report.rows_reference == 28_000
    assert result.details["not_compared"] == ["joined"]
    assert conveyor_app.metadata.list_monitoring_results(model="churn", kind="drift") == [result]
    (event,) = events.seen
    assert event.features == ("x0",) and event.result_id == result.id
    assert event.scores["ks.x0"] > 0.15
    # before the shift, three days against the three before them: nothing
    quiet = monitor_drift(conveyor_app, "churn", since=START + 4 * DAY, until=START + 7 * DAY)
    assert quiet.result.breached == () and len(events.seen) == 1


def test_skew_against_the_training_profile(conveyor_app: Any, tmp_path: Path) -> None:
    facts = build(conveyor_app, tmp_path)
    until = facts["until"]
    before = monitor_drift(conveyor_app, "churn", kind="skew", since=START, until=START + 7 * DAY)
    after = monitor_drift(conveyor_app, "churn", kind="skew", since=until - 7 * DAY, until=until)
    assert before.result.breached == ()
    assert "ks.x0" in after.result.breached
    assert {name.split(".", 1)[1] for name in after.result.breached} == {"x0"}
    assert after.report.reference == "profile"
    assert after.result.details["not_compared"] == ["joined"]
    assert after.result.details["reference"] == conveyor_app.registry.get("churn", 1).profile_uri
    assert (
        after.result.id
        != monitor_drift(conveyor_app, "churn", since=until - 7 * DAY, until=until).result.id
    )


def test_performance_with_labels_and_estimates(
    conveyor_app: Any, tmp_path: Path, events: Events
) -> None:
    facts = build(conveyor_app, tmp_path)
    monitored = monitor_performance(
        conveyor_app, "churn", labels=facts["labels"], since=START, until=facts["until"]
    )
    report = monitored.report
    assert len(report.windows) == 14
    assert all(w.rows == w.labelled == 4000 for w in report.windows)
    for w in report.windows:
        assert w.low < w.value < w.high
        assert abs(w.estimated - w.value) <= 0.03  # 4000 rows a window: CBPE's noise
    assert report.reference == pytest.approx(facts["auc"])
    assert monitored.result.breached == () and events.seen == []
    stored = conveyor_app.metadata.get_monitoring_result(monitored.result.id)
    assert stored.details["labelled"] == 56_000 and len(stored.details["windows"]) == 14
    # without labels only the estimate is there
    estimated = monitor_performance(conveyor_app, "churn", since=START, until=START + 2 * DAY)
    assert [w.value for w in estimated.report.windows] == [None, None]
    assert all(w.estimated is not None for w in estimated.report.windows)


def test_a_concept_flip_decays_and_fires_the_event(
    conveyor_app: Any, tmp_path: Path, events: Events
) -> None:
    facts = build(conveyor_app, tmp_path, days=3, flip_labels=True)
    monitored = monitor_performance(
        conveyor_app, "churn", labels=facts["labels"], since=START, until=facts["until"]
    )
    assert monitored.result.breached == ("auc",)
    assert all(w.decayed and not w.estimated_decayed for w in monitored.report.windows)
    (event,) = events.seen
    assert event.metric == "auc" and event.breached == ("auc",)
    assert event.scores["auc"] < 0.5


def test_entity_and_time_join(conveyor_app: Any) -> None:
    from conveyor.monitoring.performance import join_labels

    predictions = pl.LazyFrame(
        {
            "request_id": ["a", "b", "c"],
            "entity_key": ["u1", "u1", "u2"],
            "time": [START, START + DAY, START],
            "prediction": [0.9, 0.2, 0.4],
        }
    ).with_columns(pl.col("time").dt.cast_time_unit("us"))
    labels = pl.DataFrame(
        {
            "user": ["u1", "u1", "u2"],
            "at": [START + DAY / 2, START + 2 * DAY, START - DAY],
            "churned": [1, 0, 1],
        }
    )
    joined = (
        join_labels(
            predictions, labels, label="churned", on="entity", entity="user", label_time="at"
        )
        .collect()
        .sort("request_id")
    )
    assert joined.get_column("label").to_list() == [1, 0, None]  # u2's label came before
    with pytest.raises(ConveyorError, match="no column 'nope'"):
        join_labels(predictions, labels, label="nope")


def test_errors_name_the_problem(conveyor_app: Any, tmp_path: Path) -> None:
    facts = build(conveyor_app, tmp_path, days=1)
    with pytest.raises(ConveyorError, match="no predictions of churn v1"):
        monitor_drift(conveyor_app, "churn", since=START - 30 * DAY, until=START - 20 * DAY)
    with pytest.raises(ConveyorError, match="the reference has no rows"):
        monitor_drift(conveyor_app, "churn", since=START, until=facts["until"])
    with pytest.raises(ConveyorError, match="starts .* after it ends"):
        monitor_drift(conveyor_app, "churn", since=facts["until"], until=START)
    with pytest.raises(ConveyorError, match="not a time or duration"):
        parse_since("yesterday-ish", START)
    assert parse_since("36h", START) == START - timedelta(hours=36)
    assert parse_since("2024-02-01", START) == datetime(2024, 2, 1, tzinfo=UTC)


def test_cli_exit_codes_json_and_html(conveyor_app: Any, cli: Any, tmp_path: Path) -> None:
    facts = build(conveyor_app, tmp_path)
    until = facts["until"].isoformat()
    ok = cli.invoke(
        "monitor", "skew", "--since", START.isoformat(), "--until", (START + 7 * DAY).isoformat()
    )
    assert ok.exit_code == 0, ok.output
    assert "OK" in ok.output and "x0" in ok.output
    report = tmp_path / "drift.html"
    alert = cli.invoke(
        "monitor",
        "drift",
        "--model",
        "churn",
        "--since",
        "7d",
        "--until",
        until,
        "--json",
        "--html",
        str(report),
    )
    assert alert.exit_code == 1
    data = json.loads(alert.output)
    assert data["alert"] is True and "ks.x0" in data["result"]["breached"]
    assert {r["feature"] for r in data["rows"]} == {"x0", "x1", "x2", "plan"}
    html = report.read_text()
    assert html.count("<svg") == 5 and "http" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    perf = cli.invoke(
        "monitor",
        "performance",
        "--labels",
        facts["labels"],
        "--since",
        START.isoformat(),
        "--until",
        until,
        "--window",
        "2d",
    )
    assert perf.exit_code == 0, perf.output
    assert perf.output.count("\n2024-03-") == 7
    bad = cli.invoke("monitor", "performance", "--window", "fortnight")
    assert bad.exit_code != 0 and "not a duration" in bad.output
