"""A first real project, synthetic: three views (time-varying by airport, time-varying by
carrier, static by tail number), built with the stock steps, fed month by month."""

from __future__ import annotations

import json
from datetime import datetime

import polars as pl
import pytest

from tests.realdata.project import duckdb_reference, write_month, write_project


@pytest.fixture
def project(cli, tmp_path, monkeypatch):
    root = tmp_path / "flights"
    write_project(root)
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    write_month(root, 1)
    return root


def run(cli, *extra):
    result = cli.invoke("run", "flights", "--json", *extra)
    return result.exit_code, json.loads(result.output)


def load_app(root):
    from conveyor.app import Conveyor

    return Conveyor.load(cwd=root)


def test_the_training_set_of_three_views_equals_duckdb_asof_join_row_for_row(cli, project):
    write_month(project, 2)
    code, summary = run(cli)
    assert code == 0, summary
    app = load_app(project)
    try:
        from conveyor.runs import load_run_output

        built = load_run_output(app, summary["run_id"], "build_training_set")
        model = load_run_output(app, summary["run_id"], "train_model")
    finally:
        app.close()
    reference = duckdb_reference(project)
    flights = pl.read_parquet(project / "data" / "flights-*.parquet")
    assert built.height == flights.height == reference.height  # every entity row kept
    columns = reference.columns
    ours = (
        built.select(columns)
        .with_columns(
            pl.col("sched_dep").dt.replace_time_zone(None)
            if built.schema["sched_dep"].time_zone
            else pl.col("sched_dep")
        )
        .sort("flight_id")
    )
    theirs = reference.select(columns).sort("flight_id")
    for column in columns:
        assert ours[column].null_count() == theirs[column].null_count(), column
        mismatched = (ours[column].ne_missing(theirs[column].cast(ours[column].dtype))).sum()
        assert mismatched == 0, column
    # rows without a match are kept with nulls: unknown airports, tails and carriers
    assert (
        ours.filter(pl.col("origin") == "XXX")["temp"].null_count()
        == ours.filter(pl.col("origin") == "XXX").height
        > 0
    )
    assert ours["seats"].null_count() > 0 and ours["delay_rate"].null_count() > 0
    # joined features may be missing when serving: the signature allows it
    nullable = {f.name: f.nullable for f in model.signature.features}
    assert all(nullable[c] for c in ("temp", "precip", "delay_rate", "flights", "seats"))


def test_three_monthly_runs_store_each_source_row_once(cli, project):
    app = None
    for month in (1, 2, 3):
        if month > 1:
            write_month(project, month)
        code, summary = run(cli)
        assert code == 0, summary
        app = load_app(project)
        try:
            for source, view in (
                ("weather", "weather"),
                ("carriers", "carrier_stats"),
                ("aircraft", "aircraft_info"),
            ):
                rows = pl.read_parquet(project / "data" / f"{source}-*.parquet").height
                stored = app.features.read_view(view).select(pl.len()).collect().item()
                assert stored == rows, (month, view, stored, rows)
        finally:
            app.close()
    # a rerun on the same data writes nothing
    code, summary = run(cli, "--no-cache")
    assert code == 0, summary
    ingested = [s for s in summary["steps"] if s["step"].startswith("ingest_features")]
    assert ingested and all(s["metrics"]["ingested_rows"] == 0 for s in ingested)


def test_parity_on_historical_data_counts_what_it_compared_and_finds_injected_skew(cli, project):
    code, summary = run(cli, "-p", 'end="2024-01-31T12:00:00"')
    assert code == 0, summary
    at = "2024-01-31T12:00:00"
    clean = json.loads(cli.invoke("features", "parity", "weather", "--at", at, "--json").output)
    assert clean["ok"], clean
    assert clean["rows"] > 0 and clean["compared"] > 0
    # late data lands for a past hour: the online store has not seen it (skew)
    app = load_app(project)
    try:
        online = pl.from_arrow(
            app.features.get_online_features(
                ["weather:temp"], [{"origin": "ATL"}], at=datetime(2024, 1, 31, 12)
            )
        )
        latest = app.features.online.read(
            app.features.get_view("weather"), pl.DataFrame({"origin": ["ATL"]}).to_arrow()
        )
        stamp = latest.column("_event_ts")[0].as_py()
        assert online["temp"][0] is not None
        app.features.ingest(
            "weather",
            pl.DataFrame(
                {
                    "origin": ["ATL"],
                    "obs_time": [stamp.replace(tzinfo=None)],
                    "temp": [99.0],
                    "precip": [0.0],
                }
            ),
        )
    finally:
        app.close()
    skewed = cli.invoke("features", "parity", "weather", "--at", at, "--json", "--sample", "20")
    assert skewed.exit_code == 1
    report = json.loads(skewed.output)
    assert {(m["key"]["origin"], m["feature"]) for m in report["mismatches"]} >= {("ATL", "temp")}
    # materialized to now, every value is past its TTL: nothing compared is not a pass
    cli.invoke("features", "materialize", "weather")
    vacuous = cli.invoke("features", "parity", "weather", "--json")
    assert vacuous.exit_code == 1
    assert json.loads(vacuous.output)["compared"] == 0
