"""Serving through ``conveyor serve`` against floors measured in the same run.

Run: ``pytest -m benchmark tests/benchmarks/bench_serving.py -s``.

* floor 1: in-process ``Booster.predict`` on a one-row numpy array (no HTTP);
* floor 2: a bare uvicorn endpoint on the same stack (uvloop, httptools, orjson)
  predicting with one OpenMP thread as the server does for small requests,
  doing parse + predict, with no validation, metrics or logging;
* Conveyor: ``conveyor serve`` (a child process), validation, metrics and the
  prediction log on.

Load comes from this process through the ``conveyor loadtest`` generator (keep-alive
connections), so client and servers share the machine's cores: compare ratios.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import pytest

from conveyor.cli._loadtest import build_request, run_load

pytestmark = pytest.mark.benchmark

FEATURES = [f"f{i}" for i in range(20)]
ENTITIES = 10_000  # customers in the online store, for requests by entity key
ROUNDS = 3  # alternating load windows per side and concurrency
WINDOW_S = 3.0
BARE = r"""
import sys, lightgbm as lgb, numpy as np, orjson, uvicorn
booster = lgb.Booster(model_file=sys.argv[1])
names = booster.feature_name()

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            break
    if scope["method"] == "GET":  # health
        out = b"{}"
    else:
        cols = orjson.loads(body)["columns"]
        x = np.column_stack([np.asarray(cols[n], dtype=np.float64) for n in names])
        # one OpenMP thread, as the server predicts small requests
        out = orjson.dumps({"predictions": booster.predict(x, num_threads=1)},
                           option=orjson.OPT_SERIALIZE_NUMPY)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop", http="httptools",
            access_log=False, log_level="warning", lifespan="off")
"""


def _exe() -> list[str]:
    found = shutil.which("conveyor", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "conveyor"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_health(url: str, timeout: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"{url} never answered")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    import lightgbm as lgb
    import numpy as np

    from conveyor.app import Conveyor
    from conveyor.config import Config
    from conveyor.manager import make_plugin_manager
    from conveyor.models import FeatureSpec, Signature

    root = tmp_path_factory.mktemp("serving")
    (root / "conveyor.toml").write_text('[server]\nmodel = "bench"\nport = 0\n')
    config = Config.load(cwd=root)
    app = Conveyor(config=config, pm=make_plugin_manager(config.plugin_selection()))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, len(FEATURES)))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 31, "verbose": -1},
        lgb.Dataset(x, y, feature_name=FEATURES),
        num_boost_round=100,
    )
    text = booster.model_to_string()
    (root / "model.txt").write_text(text)
    info = app.artifacts.put_bytes("models/bench/model.txt", text.encode())
    signature = Signature(
        features=[FeatureSpec(name=f, dtype="float64") for f in FEATURES],
        label="y",
        objective="binary",
    )
    version = app.registry.register(
        "bench",
        artifact_uri=info.uri,
        sha256=info.sha256,
        signature=signature,
        actor="bench",
        features=[_online_features(app, x[:ENTITIES])],
    )
    app.registry.set_alias(
        "bench", "production", version.version, actor="bench", reason="benchmark", force=True
    )
    app.close()
    return root, booster, signature.to_dict()


@pytest.fixture(scope="module")
def conveyor_url(project):
    root, _booster, _sig = project
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*_exe(), "serve", "--port", str(_free_port())], cwd=root, stdout=subprocess.PIPE, text=True
    )
    url = proc.stdout.readline().rsplit(" ", 1)[1].strip()
    _wait_health(f"{url}/health")
    ready_s = time.perf_counter() - started
    yield url, ready_s
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def bare_url(project):
    root, _booster, _sig = project
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", BARE, str(root / "model.txt"), str(port)])
    url = f"http://127.0.0.1:{port}"
    _wait_health(f"{url}/", 30)
    yield url
    proc.terminate()
    proc.wait(30)


def _online_features(app, values):
    """The 20 features of ENTITIES customers in the online store (one recent row each),
    as the lineage an entity request reads by."""
    from datetime import UTC, datetime, timedelta

    import polars as pl

    from conveyor.features import Entity, Feature, FeatureView
    from conveyor.interfaces.lineage import FeatureViewUse

    view = FeatureView(
        name="bench_view",
        entities=[Entity(name="customer", join_keys="customer_id", dtype="int64")],
        features=[Feature(name=f, dtype="float64") for f in FEATURES],
        timestamp_field="ts",
        ttl=timedelta(days=30),
    )
    app.features.apply([view])
    frame = pl.DataFrame(
        {
            "customer_id": list(range(len(values))),
            "ts": [datetime.now(UTC) - timedelta(hours=1)] * len(values),
            **{f: values[:, j] for j, f in enumerate(FEATURES)},
        }
    )
    app.features.ingest(view.name, frame)
    app.features.materialize(view.name)
    version = app.metadata.get_definition("feature_view", view.name).version
    return FeatureViewUse(view=view.name, version=version, features=FEATURES)


def _raw_post(url: str, path: str, payload: dict) -> bytes:
    """A raw keep-alive HTTP request, as ``build_request`` makes them."""
    from urllib.parse import urlsplit

    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _row(i: int = 0) -> list[float]:
    return [((i + j) * 37 % 100) / 25.0 - 2.0 for j in range(len(FEATURES))]


def test_single_row_throughput(project, conveyor_url, bare_url):
    import numpy as np

    _root, booster, signature = project
    url, ready_s = conveyor_url
    x = np.asarray([_row()])
    for options in ({"num_threads": 1}, {}):
        n, began = 0, time.perf_counter()
        while time.perf_counter() - began < 2:
            booster.predict(x, **options)
            n += 1
        in_process = n / (time.perf_counter() - began)
        print(
            f"\nserving: in-process Booster.predict one row {options or 'default threads'}:"
            f" {in_process:,.0f} /s"
        )
    print(f"serving: conveyor serve to ready: {ready_s:.2f} s")
    for c in (1, 8, 32):
        # bare and Conveyor take turns, ROUNDS windows each: on a shared machine one
        # window's noise would otherwise decide the ratio; medians are printed
        results: dict[str, list] = {"bare": [], "conveyor": []}
        for _ in range(ROUNDS):
            for name, base in (("bare", bare_url), ("conveyor", url)):
                request = build_request(base, "predict", "bench", signature, 1, None)
                run_load(base, request, concurrency=c, duration=0.3)  # warm up
                result = run_load(base, request, concurrency=c, duration=WINDOW_S)
                assert result.errors == 0, result.statuses
                results[name].append(result)
        conv, bare = (
            {
                "rps": statistics.median(r.rps for r in runs),
                "p50": statistics.median(r.percentile(0.5) for r in runs) * 1e3,
                "p99": statistics.median(r.percentile(0.99) for r in runs) * 1e3,
                "p99s": "/".join(f"{r.percentile(0.99) * 1e3:.1f}" for r in runs),
            }
            for runs in (results["conveyor"], results["bare"])
        )
        ratios = "/".join(
            f"{a.rps / b.rps:.2f}"
            for a, b in zip(results["conveyor"], results["bare"], strict=True)
        )
        print(
            f"serving c={c} (median of {ROUNDS} alternating {WINDOW_S:g} s windows): conveyor "
            f"{conv['rps']:,.0f} req/s p50 {conv['p50']:.2f} ms p99 {conv['p99']:.2f} ms "
            f"({conv['p99s']}) | bare {bare['rps']:,.0f} req/s p50 {bare['p50']:.2f} ms "
            f"p99 {bare['p99']:.2f} ms ({bare['p99s']}) | ratio {conv['rps'] / bare['rps']:.2f} "
            f"(per round {ratios})"
        )


def test_batch_of_1000_rows(project, conveyor_url):
    import http.client

    import numpy as np
    import orjson
    import polars as pl

    _root, booster, _sig = project
    url, _ready = conveyor_url
    rows = [_row(i) for i in range(1000)]
    columns = {f: [r[j] for r in rows] for j, f in enumerate(FEATURES)}
    json_body = orjson.dumps({"columns": columns})
    buffer = io.BytesIO()
    pl.DataFrame(columns).write_ipc_stream(buffer)
    arrow_body = buffer.getvalue()
    naive = []
    for _ in range(30):
        t0 = time.perf_counter()
        cols = json.loads(json_body)["columns"]
        booster.predict(np.column_stack([np.asarray(cols[f]) for f in FEATURES]))
        naive.append(time.perf_counter() - t0)
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    timings: dict[str, list[float]] = {}
    for label, body, ctype in (
        ("json", json_body, "application/json"),
        ("arrow", arrow_body, "application/vnd.apache.arrow.stream"),
    ):
        timings[label] = []
        for _ in range(60):
            t0 = time.perf_counter()
            conn.request("POST", "/predict", body=body, headers={"Content-Type": ctype})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            timings[label].append(time.perf_counter() - t0)
    conn.close()
    print(
        f"\nserving 1000 rows: naive in-process json.loads + predict p50 "
        f"{statistics.median(naive) * 1e3:.1f} ms | conveyor JSON p50 "
        f"{statistics.median(timings['json'][10:]) * 1e3:.1f} ms | conveyor Arrow p50 "
        f"{statistics.median(timings['arrow'][10:]) * 1e3:.1f} ms"
    )


def test_entity_key_request(project, conveyor_url):
    """One customer by key (20 features read from the SQLite online store) beside a
    one-row request that sends the features: goal p99 <= 2x the one-row p99."""
    _root, _booster, signature = project
    url, _ready = conveyor_url
    single = build_request(url, "predict", "bench", signature, 1, None)
    by_key = _raw_post(url, "/predict", {"entities": [{"customer_id": 4242}]})
    for c in (1, 8):
        results = {}
        for name, request in (("one row", single), ("entity key", by_key)):
            run_load(url, request, concurrency=c, duration=0.5)  # warm up
            results[name] = run_load(url, request, concurrency=c, duration=4)
            assert results[name].errors == 0, results[name].statuses
        row, key = results["one row"], results["entity key"]
        print(
            f"\nserving c={c}: entity key {key.rps:,.0f} req/s p50 "
            f"{key.percentile(0.5) * 1e3:.2f} ms p99 {key.percentile(0.99) * 1e3:.2f} ms | "
            f"one row {row.rps:,.0f} req/s p50 {row.percentile(0.5) * 1e3:.2f} ms p99 "
            f"{row.percentile(0.99) * 1e3:.2f} ms | p99 ratio "
            f"{key.percentile(0.99) / row.percentile(0.99):.2f} (goal <= 2)"
        )
