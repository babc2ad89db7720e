"""A challenger alias beside the served one: shadow (logged, never answered) or canary."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from .conftest import HTTP_MODEL, register_rich_model, send

BODY = {"records": [{"age": 0.4, "plan": "basic", "visits": 2}]}


def _champion_and_challenger(app):
    champion = register_rich_model(app, seed=0)
    challenger = register_rich_model(app, seed=1, alias="challenger")
    return champion.version, challenger.version


def _metric(server, name, labels):
    text = send(f"{server.address}/metrics")[2].decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_shadow_predicts_and_logs_every_request_but_never_answers(start_http, conveyor_app):
    from conveyor.predictions import scan_predictions

    champion, challenger = _champion_and_challenger(conveyor_app)
    server = start_http(challenger_alias="challenger", challenger_mode="shadow")
    ids = []
    for i in range(12):
        status, headers, body = send(
            f"{server.address}/predict", "POST", BODY, headers={"X-Request-Id": f"req-{i}"}
        )
        assert status == 200 and body["version"] == champion
        assert headers["x-conveyor-model-version"] == str(champion)
        ids.append(f"req-{i}")
    assert (
        _metric(
            server,
            "conveyor_challenger_predictions_total",
            {"mode": "shadow", "version": str(challenger)},
        )
        == 12
    )
    assert (
        _metric(
            server, "conveyor_predictions_total", {"model": HTTP_MODEL, "version": str(challenger)}
        )
        == 12
    )
    server.stop(timeout=5)  # flushes the log
    logged = scan_predictions(conveyor_app.artifacts, model=HTTP_MODEL).collect()
    for version in (champion, challenger):
        rows = logged.filter(logged["version"] == version)
        assert sorted(rows["request_id"].to_list()) == sorted(ids)


def test_a_refused_shadow_request_is_counted_and_the_answer_unchanged(start_http, conveyor_app):
    champion = register_rich_model(conveyor_app, seed=0).version
    register_rich_model(conveyor_app, seed=2, extra=True, alias="challenger")  # + tenure
    server = start_http(challenger_alias="challenger")
    status, _h, body = send(f"{server.address}/predict", "POST", BODY)
    assert status == 200 and body["version"] == champion
    assert _metric(server, "conveyor_errors_total", {"kind": "shadow_refused"}) == 1


def test_canary_answers_its_share_sticky_per_key(start_http, conveyor_app):
    champion, challenger = _champion_and_challenger(conveyor_app)
    server = start_http(challenger_alias="challenger", challenger_mode="canary", canary_share=0.5)
    sides: dict[str, int] = {}
    for round_ in range(2):
        for i in range(40):
            key = f"user-{i}"
            status, headers, body = send(
                f"{server.address}/predict", "POST", BODY, headers={"X-Conveyor-Key": key}
            )
            assert status == 200
            assert headers["x-conveyor-model-version"] == str(body["version"])
            if round_ == 0:
                sides[key] = body["version"]
            else:
                assert sides[key] == body["version"], f"{key} changed sides"
    counts = {v: list(sides.values()).count(v) for v in (champion, challenger)}
    assert 8 <= counts[challenger] <= 32 and counts[champion] + counts[challenger] == 40
    assert (
        _metric(
            server,
            "conveyor_challenger_predictions_total",
            {"mode": "canary", "version": str(challenger)},
        )
        == 2 * counts[challenger]
    )
    # a v2 request naming the challenger's version gets it, whatever its key
    status, _h, body = send(
        f"{server.address}/v2/models/{HTTP_MODEL}/versions/{challenger}/infer",
        "POST",
        {
            "inputs": [
                {"name": "age", "shape": [1], "datatype": "FP64", "data": [0.1]},
                {"name": "plan", "shape": [1], "datatype": "BYTES", "data": ["pro"]},
                {"name": "visits", "shape": [1], "datatype": "INT64", "data": [3]},
            ]
        },
    )
    assert status == 200 and body["model_version"] == str(challenger)


def test_canary_share_zero_never_answers_and_follows_its_alias(start_http, conveyor_app):
    champion, _challenger = _champion_and_challenger(conveyor_app)
    server = start_http(challenger_alias="challenger", challenger_mode="canary", canary_share=0.0)
    for i in range(10):
        body = send(f"{server.address}/predict", "POST", BODY, headers={"X-Conveyor-Key": f"k{i}"})[
            2
        ]
        assert body["version"] == champion
    moved = register_rich_model(conveyor_app, seed=3, alias="challenger")
    deadline = time.monotonic() + 30
    while server._server_app.challenger.current.version != moved.version:
        assert time.monotonic() < deadline, "the challenger slot never followed its alias"
        time.sleep(0.02)
