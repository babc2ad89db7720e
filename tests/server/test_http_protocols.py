"""The http server's protocols, each through a real client against a real server."""

from __future__ import annotations

import io

import numpy as np
import pytest

from .conftest import HTTP_MODEL, HTTP_TOKEN, send


def expected(app, rows):
    """What the registered model predicts for ``rows`` in-process."""
    import polars as pl

    from conveyor.models import load_registered_model, predict

    model = load_registered_model(app, HTTP_MODEL, alias="production")
    return predict(model, pl.DataFrame(rows, schema_overrides={"visits": pl.Int64}))


ROWS = {"age": [0.5, -1.0, 2.0], "plan": ["pro", "basic", "unseen"], "visits": [3, None, 10]}


def test_v2_client_round_trip(start_http, conveyor_app):
    import tritonclient.http as httpclient

    server = start_http()
    client = httpclient.InferenceServerClient(server.address.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(HTTP_MODEL)
        meta = client.get_model_metadata(HTTP_MODEL)
        assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
            ("age", "FP64"),
            ("plan", "BYTES"),
            ("visits", "INT64"),
        ]
        inputs = []
        for name, values, datatype in (
            ("age", np.array(ROWS["age"]), "FP64"),
            ("plan", np.array(ROWS["plan"], dtype=object), "BYTES"),
            ("visits", np.array([3, 0, 10]), "INT64"),
        ):
            tensor = httpclient.InferInput(name, list(values.shape), datatype)
            tensor.set_data_from_numpy(values)  # the client's default: binary tensor data
            inputs.append(tensor)
        result = client.infer(HTTP_MODEL, inputs)
        got = result.as_numpy("prediction")
        rows = {**ROWS, "visits": [3, 0, 10]}
        np.testing.assert_allclose(got, expected(conveyor_app, rows), rtol=1e-12)
        response = result.get_response()
        assert (response["model_name"], response["model_version"]) == (HTTP_MODEL, "1")
        # JSON tensor data works too, and so does a version in the path
        json_inputs = []
        for tensor, values in zip(inputs, (ROWS["age"], ROWS["plan"], [3, 0, 10]), strict=True):
            fresh = httpclient.InferInput(tensor.name(), [3], tensor.datatype())
            fresh.set_data_from_numpy(
                np.array(values, dtype=object if tensor.datatype() == "BYTES" else None),
                binary_data=False,
            )
            json_inputs.append(fresh)
        again = client.infer(HTTP_MODEL, json_inputs, model_version="1")
        np.testing.assert_allclose(again.as_numpy("prediction"), got, rtol=1e-12)
    finally:
        client.close()


def test_a_v2_request_names_a_missing_version_and_model(start_http):
    server = start_http()
    status, _h, body = send(
        f"{server.address}/v2/models/{HTTP_MODEL}/versions/9/infer", "POST", {"inputs": []}
    )
    assert status == 404 and body["fields"] == ["version"]
    status, _h, body = send(f"{server.address}/v2/models/other")
    assert status == 404 and "churn" in body["hint"]


@pytest.mark.parametrize(
    "payload",
    [
        {
            "dataframe_split": {
                "columns": ["age", "plan", "visits"],
                "data": [[0.5, "pro", 3], [-1.0, "basic", None], [2.0, "unseen", 10]],
            }
        },
        {
            "dataframe_records": [
                {"age": 0.5, "plan": "pro", "visits": 3},
                {"age": -1.0, "plan": "basic", "visits": None},
                {"age": 2.0, "plan": "unseen", "visits": 10},
            ]
        },
        {
            "instances": [
                {"visits": 3, "age": 0.5, "plan": "pro"},
                {"age": -1.0, "plan": "basic"},
                {"age": 2.0, "plan": "unseen", "visits": 10},
            ]
        },
        {
            "inputs": {
                "plan": ["pro", "basic", "unseen"],
                "age": [0.5, -1.0, 2.0],
                "visits": [3, None, 10],
            }
        },
    ],
    ids=["dataframe_split", "dataframe_records", "instances", "inputs"],
)
def test_mlflow_invocations_payloads(start_http, conveyor_app, payload):
    server = start_http()
    status, headers, body = send(f"{server.address}/invocations", "POST", payload)
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], expected(conveyor_app, ROWS), rtol=1e-12)
    assert (headers["x-conveyor-model"], headers["x-conveyor-model-version"]) == (HTTP_MODEL, "1")
    assert (body["model"], body["version"]) == (HTTP_MODEL, 1)


def test_predict_records_columns_and_arrow_agree(start_http, conveyor_app):
    import polars as pl

    server = start_http()
    records = [dict(zip(ROWS, values, strict=True)) for values in zip(*ROWS.values(), strict=True)]
    by_records = send(f"{server.address}/predict", "POST", {"records": records})[2]
    by_columns = send(f"{server.address}/predict", "POST", {"columns": ROWS})[2]
    buffer = io.BytesIO()
    pl.DataFrame(ROWS, schema_overrides={"visits": pl.Int64}).write_ipc_stream(buffer)
    status, _h, by_arrow = send(
        f"{server.address}/predict",
        "POST",
        buffer.getvalue(),
        headers={"Content-Type": "application/vnd.apache.arrow.stream"},
    )
    assert status == 200, by_arrow
    want = expected(conveyor_app, ROWS)
    for body in (by_records, by_columns, by_arrow):
        np.testing.assert_allclose(body["predictions"], want, rtol=1e-12)
        assert body["version"] == 1 and body["request_id"]


def test_metrics_parse_with_prometheus_client(start_http):
    from prometheus_client.parser import text_string_to_metric_families

    server = start_http(log_predictions=True)
    for _ in range(3):
        assert send(f"{server.address}/predict", "POST", {"columns": ROWS})[0] == 200
    assert send(f"{server.address}/predict", "POST", {"columns": {"age": [1.0]}})[0] == 422
    status, headers, text = send(f"{server.address}/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert samples[("conveyor_requests_total", (("route", "/predict"), ("status", "200")))] == 3
    assert samples[("conveyor_errors_total", (("kind", "signature_mismatch"),))] == 1
    assert samples[("conveyor_predictions_total", (("model", HTTP_MODEL), ("version", "1")))] == 9
    assert (
        samples[("conveyor_prediction_value_count", (("model", HTTP_MODEL), ("version", "1")))] == 9
    )
    assert samples[("conveyor_model_served", (("model", HTTP_MODEL), ("version", "1")))] == 1
    assert ("conveyor_request_seconds_bucket", (("le", "+Inf"), ("route", "/predict"))) in samples
    assert ("conveyor_queue_depth", ()) in samples
    assert ("conveyor_prediction_log_dropped", ()) in samples


def test_predictions_are_logged_with_request_ids(start_http, conveyor_app):
    from conveyor.predictions import scan_predictions

    server = start_http()
    status, headers, _ = send(
        f"{server.address}/predict", "POST", {"columns": ROWS}, headers={"X-Request-Id": "req-42"}
    )
    assert status == 200 and headers["x-request-id"] == "req-42"
    server.stop(timeout=5)  # flushes the log
    logged = scan_predictions(conveyor_app.artifacts, model=HTTP_MODEL).collect()
    assert logged.height == 3
    assert set(logged["request_id"].to_list()) == {"req-42"}
    assert logged["features"].struct.field("plan").to_list() == ROWS["plan"]


def test_every_route_is_public_by_list_or_protected(start_http):
    from conveyor.plugins.http.routes import ROUTES

    server = start_http(token=HTTP_TOKEN)
    public = {"/health", "/ping", "/v2/health/live", "/v2/health/ready"}
    assert {r.path for r in ROUTES if r.public} == public
    for route in ROUTES:
        path = route.path.replace("{name}", HTTP_MODEL).replace("{version}", "1")
        status = send(
            f"{server.address}{path}",
            route.method,
            {"inputs": []} if route.method == "POST" else None,
        )[0]
        if route.public:
            assert status == 200, route
        else:
            assert status == 401, route
            authorized = send(
                f"{server.address}{path}",
                route.method,
                {"columns": ROWS} if route.method == "POST" else None,
                token=HTTP_TOKEN,
            )[0]
            assert authorized != 401, route


def test_openapi_documents_every_route(start_http):
    from conveyor.plugins.http.routes import ROUTES

    server = start_http()
    status, _h, doc = send(f"{server.address}/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == {(r.method, r.path) for r in ROUTES}
    assert "security" not in doc["paths"]["/health"]["get"]
    assert doc["paths"]["/predict"]["post"]["security"] == [{"bearer": []}]
