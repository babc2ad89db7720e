"""The three-view project registered: lineage names the feature views (and definition
versions) the model trained on; a refused candidate stays inspectable, never promoted;
the run summary, `runs show` and `models show` say what users of MLflow expect."""

from __future__ import annotations

import json

from tests.realdata.test_flights import load_app, project  # noqa: F401 - the fixture


def _run(cli, *extra):
    result = cli.invoke("run", "registered", "--json", *extra)
    return result.exit_code, json.loads(result.output)


def test_lineage_candidates_and_summaries_of_a_registered_three_view_model(cli, project):  # noqa: F811
    # random labels: no threshold for the first model, an unreachable one for the second
    code, first = _run(cli, "-p", "rule={minimums={}}")
    assert code == 0, first
    candidate = first["candidate"]
    assert (candidate["passed"], candidate["version"], candidate["model"]) == (True, 1, "late")
    assert candidate["promotion"]["production"] == "promoted"
    assert set(candidate["metrics"]) >= {"auc", "logloss"}
    text = cli.invoke("runs", "show", first["run_id"]).output
    assert "      metrics: " in text and "gate_passed=1" in text
    assert "registered_version=1" in text

    app = load_app(project)
    try:
        from conveyor.training import trained_features

        uses = trained_features(app, "late", "production")
        assert trained_features(app, "late", 1) == trained_features(app, "late") == uses
        versions = {d.name: d.version for d in app.metadata.list_definitions("feature_view")}
        assert [(u.view, u.version) for u in uses] == [
            ("weather", versions["weather"]),
            ("carrier_stats", versions["carrier_stats"]),
            ("aircraft_info", versions["aircraft_info"]),
        ]
        assert [u.refs for u in uses] == [
            ["weather:temp", "weather:precip"],
            ["carrier_stats:delay_rate"],
            ["aircraft_info:seats", "aircraft_info:model"],
        ]
        signature = [f.name for f in app.registry.get("late", 1).signature.features]
        assert {r.split(":")[1] for u in uses for r in u.refs} <= set(signature)
    finally:
        app.close()
    graph = json.loads(cli.invoke("lineage", "late:1", "--json").output)
    definition_edges = {
        (e["src"], e["dst"]) for e in graph["edges"] if e["relation"] == "definition"
    }
    assert definition_edges == {
        (f"feature_view:{u.view}:{u.version}", "model:late:1") for u in uses
    }
    tree = cli.invoke("lineage", "late:1").output
    assert f"<definition> feature_view weather v{uses[0].version}" in tree
    shown = cli.invoke("models", "show", "late:1").output
    assert shown.count("signature:") == 1
    assert sum(line.strip().startswith("seats ") for line in shown.splitlines()) == 1

    code, second = _run(cli, "-p", "rule={minimums={auc=0.99}}")
    assert code == 1 and second["status"] == "refused"
    refused = second["candidate"]
    assert (refused["passed"], refused["version"], refused["promotion"]) == (False, None, {})
    assert any("0.99" in reason for reason in refused["reasons"])
    listed = json.loads(cli.invoke("models", "candidates", "--json").output)
    assert [(c["run_id"], c["passed"]) for c in listed] == [
        (second["run_id"], False),
        (first["run_id"], True),
    ]
    assert listed[0]["metrics"] == refused["metrics"] and listed[0]["artifact_uri"]
    only = json.loads(cli.invoke("models", "candidates", "--refused", "--json").output)
    assert [c["run_id"] for c in only] == [second["run_id"]]
    table = cli.invoke("models", "candidates").output
    assert "REFUSED" in table and "the target is >= 0.99" in table
    # never registered, never promoted: production still holds the first model
    app = load_app(project)
    try:
        assert [v.version for v in app.registry.list_versions("late")] == [1]
        assert app.registry.aliases("late")["production"] == 1
    finally:
        app.close()
    summary = cli.invoke("run", "registered", "-p", "rule={minimums={auc=0.99}}")
    assert "Gate: REFUSED" in summary.output and "Candidate for late: " in summary.output
