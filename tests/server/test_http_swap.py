"""Hot-swap under load: the server follows the alias without failing a request."""

from __future__ import annotations

import http.client
import json
import threading
import time

from .conftest import HTTP_ALIAS, HTTP_MODEL, register_rich_model, send

# a superset of both signatures: a model ignores the columns it does not read
BODY = json.dumps(
    {
        "columns": {
            "age": [0.3, -0.2],
            "plan": ["pro", "basic"],
            "visits": [4, 1],
            "tenure": [1.5, 2.5],
        }
    }
).encode()


def _client(port, stop, seen, failures):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(20_000):  # bounded in count, and in time by ``stop``
        if stop.is_set():
            break
        try:
            conn.request(
                "POST", "/predict", body=BODY, headers={"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            data = json.loads(response.read())
            if response.status != 200:
                failures.append((response.status, data))
                continue
            header = int(response.getheader("x-conveyor-model-version"))
            assert header == data["version"]
            seen.append(header)
        except Exception as exc:  # a dropped connection is a failed request
            failures.append(("exception", repr(exc)))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.close()


def test_alias_moves_under_load_fail_no_request(start_http, conveyor_app):
    server = start_http(poll_interval=0.05)
    port = int(server.address.rsplit(":", 1)[1])
    stop = threading.Event()
    seen: list[list[int]] = [[] for _ in range(4)]
    failures: list = []
    clients = [
        threading.Thread(target=_client, args=(port, stop, seen[i], failures)) for i in range(4)
    ]
    for thread in clients:
        thread.start()
    plan = [
        dict(seed=1),
        dict(seed=2, corrupt=True),
        dict(seed=3, extra=True),
        dict(seed=4, extra=True),
        dict(seed=5),
        dict(seed=6, extra=True),
    ]
    corrupt = None
    deadline = time.monotonic() + 120
    try:
        for step in plan:
            version = register_rich_model(conveyor_app, **step)
            if step.get("corrupt"):
                corrupt = version.version
                assert _until(
                    lambda v=version: (server.slot.last_error or "").startswith(f"v{v.version}:"),
                    deadline,
                )
                time.sleep(0.3)  # traffic keeps flowing on the old version meanwhile
            else:
                assert _until(
                    lambda v=version: server.slot.current.version == v.version, deadline
                ), f"v{version.version} never took traffic"
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in clients:
            thread.join(30)
    assert not failures, failures[:5]
    final = conveyor_app.registry.resolve(HTTP_MODEL, HTTP_ALIAS).version
    for versions in seen:
        assert versions, "every client got answers"
        assert versions == sorted(versions), "versions only move forward"
        assert corrupt not in versions
    everything = {v for versions in seen for v in versions}
    assert final in everything and len(everything) >= 4
    status, _h, health = send(f"{server.address}/v2/health/ready")
    assert status == 200 and health["version"] == final
    metrics = send(f"{server.address}/metrics")[2].decode()
    assert 'conveyor_model_swaps_total{result="failed"} 1.0' in metrics
    assert 'conveyor_model_swaps_total{result="ok"} 5.0' in metrics


def _until(condition, deadline):
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False
