"""The example project end to end: the register step stores the calibration, and the
monitor commands read a log of the registered model's own predictions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from conveyor.app import Conveyor
from conveyor.config import Config
from conveyor.models.inference import predict
from conveyor.models.registered import load_registered_model
from conveyor.monitoring.service import load_calibration
from conveyor.predictions import PredictionLog

START = datetime(2024, 6, 1, tzinfo=UTC)


def test_a_trained_model_is_calibrated_and_monitored(
    cli: Any, tmp_path: Any, monkeypatch: Any, plugin_manager: Any
) -> None:
    assert cli.invoke("init", "proj", "--rows", "6000").exit_code == 0
    monkeypatch.chdir(tmp_path / "proj")
    trained = cli.invoke("run", "--json", "-p", "train={num_boost_round = 40}")
    assert trained.exit_code == 0, trained.output
    app = Conveyor(config=Config.load(cwd=tmp_path / "proj"), pm=plugin_manager)
    try:
        (summary,) = app.registry.list_models()
        mv = app.registry.get(summary.name, summary.latest_version)
        calibration = load_calibration(app, mv)
        assert calibration is not None and calibration.rows > 0
        assert calibration.reliable, calibration
        model = load_registered_model(app, mv)
        data = pl.read_parquet(tmp_path / "proj" / "data" / "*.parquet")
        names = [n for n in mv.signature.names if n in data.columns]
        assert names, "the example data carries the model's inputs"
        rows = data.head(4000)
        scores = predict(model, rows)
        ids = [f"r{i}" for i in range(rows.height)]
        with PredictionLog(app.artifacts) as log:
            for day in range(4):
                part = slice(day * 1000, (day + 1) * 1000)
                log.append(
                    model=mv.name,
                    version=mv.version,
                    features=rows[part].select(names),
                    predictions=scores[part],
                    request_ids=ids[part],
                    time=START + timedelta(days=day, hours=1),
                )
        labels = tmp_path / "labels.parquet"
        pl.DataFrame({"request_id": ids, "y": rows.get_column(mv.signature.label)}).write_parquet(
            labels
        )
    finally:
        app.close()
    window = ["--since", START.isoformat(), "--until", (START + timedelta(days=4)).isoformat()]
    skew = cli.invoke("monitor", "skew", *window, "--json")
    assert skew.exit_code == 0, skew.output  # the training data itself: no skew
    assert {r["feature"] for r in json.loads(skew.output)["rows"]} <= set(names)
    perf = cli.invoke(
        "monitor", "performance", *window, "--labels", str(labels), "--label", "y", "--json"
    )
    assert perf.exit_code == 0, perf.output
    windows = json.loads(perf.output)["rows"]
    assert [w["labelled"] for w in windows] == [1000] * 4
    assert all(w["estimated"] != "- [-, -]" for w in windows)
