"""Several worker processes on one port: one scrape of /metrics sees every worker."""

from __future__ import annotations

import os
import stat
import time

from prometheus_client.parser import text_string_to_metric_families

from .conftest import send

BODY = {"records": [{"age": 0.1, "plan": "pro", "visits": 3}]}


def _samples(text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_one_scrape_merges_every_worker_and_the_directory_goes_at_stop(start_http):
    server = start_http(workers=2)
    directory = server._metrics_dir
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    for _ in range(40):  # a connection each: the workers share the accepts
        assert send(f"{server.address}/predict", "POST", BODY)[0] == 200
    time.sleep(1.5)  # > one snapshot interval
    pids = set()
    for _ in range(6):
        status, _h, body = send(f"{server.address}/metrics")
        assert status == 200
        assert body.count(b"# TYPE conveyor_requests_total counter") == 1  # one family
        samples = _samples(body.decode())
        assert samples[("conveyor_server_workers", ())] == 2
        assert (
            samples[("conveyor_requests_total", (("route", "/predict"), ("status", "200")))] == 40
        )
        assert samples[("conveyor_predictions_total", (("model", "churn"), ("version", "1")))] == 40
        assert (
            samples[("conveyor_prediction_value_count", (("model", "churn"), ("version", "1")))]
            == 40
        )
        assert samples[("conveyor_model_served", (("model", "churn"), ("version", "1")))] == 2
        pids.update(p.name for p in os.scandir(directory))
    assert len({p for p in pids if p.endswith(".prom")}) == 2
    server.stop(timeout=5)
    assert not os.path.exists(directory)
