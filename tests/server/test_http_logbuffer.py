"""Small requests reach the prediction log coalesced, each row with its request id."""

from __future__ import annotations

from .conftest import HTTP_MODEL, send


def test_coalesced_rows_keep_request_ids_and_values_of_mixed_types(start_http, conveyor_app):
    from conveyor.predictions import scan_predictions

    server = start_http()
    bodies = {
        "a": {"records": [{"age": 1, "plan": "pro", "visits": 3}]},  # int age
        "b": {"records": [{"age": 0.5, "plan": None, "visits": None}]},  # float age
        "c": {"columns": {"age": [2.5, -1.0], "plan": ["basic", "zz"], "visits": [1, 2]}},
    }
    for rid, body in bodies.items():
        assert (
            send(f"{server.address}/predict", "POST", body, headers={"X-Request-Id": rid})[0] == 200
        )
    server.stop(timeout=5)  # hands the buffer to the log and flushes it
    logged = scan_predictions(conveyor_app.artifacts, model=HTTP_MODEL).collect()
    assert sorted(logged["request_id"].to_list()) == ["a", "b", "c", "c"]
    rows = {(r["request_id"], r["features"]["age"]) for r in logged.iter_rows(named=True)}
    assert rows == {("a", 1.0), ("b", 0.5), ("c", 2.5), ("c", -1.0)}
