"""What the http server refuses, and how: JSON 4xx naming the field, never a 5xx."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import HTTP_MODEL, HTTP_TOKEN, send

OK = {"columns": {"age": [1.0], "plan": ["pro"], "visits": [2]}}


@pytest.fixture
def server(start_http):
    return start_http(max_body=4096, read_timeout=0.5)


def test_401_without_or_with_a_wrong_token(start_http):
    server = start_http(token=HTTP_TOKEN)
    for token in (None, "x" * 26, HTTP_TOKEN[:-1]):
        status, headers, body = send(f"{server.address}/predict", "POST", OK, token=token)
        assert status == 401 and headers["www-authenticate"] == "Bearer"
        assert body["fields"] == ["Authorization"] and HTTP_TOKEN not in str(body)
    assert send(f"{server.address}/predict", "POST", OK, token=HTTP_TOKEN)[0] == 200
    assert send(f"{server.address}/health")[0] == 200


def test_404_and_405(server):
    status, _h, body = send(f"{server.address}/nope")
    assert status == 404 and "openapi" in body["hint"]
    status, headers, body = send(f"{server.address}/predict")
    assert status == 405 and headers["allow"] == "POST"


def test_413_before_the_body_is_read(server):
    with socket.create_connection(("127.0.0.1", int(server.address.rsplit(":", 1)[1]))) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
            b"application/json\r\nContent-Length: 10000000\r\n\r\n"
        )
        sock.settimeout(5)
        head = sock.recv(65536)  # answered without sending a byte of the body
    assert head.startswith(b"HTTP/1.1 413")
    assert b"max_body" in head
    with socket.create_connection(("127.0.0.1", int(server.address.rsplit(":", 1)[1]))) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
            b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"[" + b"1," * 3000
        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2)  # no length up front
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 413")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_415_for_anything_but_json(server, content_type):
    headers = {} if content_type is None else {"Content-Type": content_type}
    status, _h, body = send(
        f"{server.address}/invocations", "POST", b'{"inputs": {}}', headers=headers
    )
    assert status == 415 and body["fields"] == ["Content-Type"]


def test_host_and_origin_checks(server):
    status, _h, body = send(
        f"{server.address}/predict", "POST", OK, headers={"Host": "evil.example.com"}
    )
    assert status == 400 and body["kind"] == "host_not_allowed"
    status, _h, body = send(
        f"{server.address}/predict", "POST", OK, headers={"Origin": "https://evil.example.com"}
    )
    assert status == 403 and body["fields"] == ["Origin"]
    assert (
        send(f"{server.address}/predict", "POST", OK, headers={"Host": "localhost:1234"})[0] == 200
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"columns": {"plan": ["pro"], "visits": [1]}}, "age"),  # missing
        ({"columns": {"age": [None], "plan": ["pro"], "visits": [1]}}, "age"),  # not nullable
        ({"columns": {"age": ["old"], "plan": ["pro"], "visits": [1]}}, "age"),  # type
        ({"columns": {"age": [1.0, "x"], "plan": ["a", "b"], "visits": [1, 2]}}, "age"),  # mixed
        ({"records": [{"age": 1.0, "plan": "pro", "visits": 1}, 3]}, "records[1]"),
        ({"rows": []}, "records"),
    ],
)
def test_422_names_the_field(server, payload, field):
    status, _h, body = send(f"{server.address}/predict", "POST", payload)
    assert status == 422, body
    assert field in body["fields"] and body["hint"]


def test_infinity_is_refused_in_json_and_arrow(server):
    import io

    import polars as pl

    status, _h, body = send(
        f"{server.address}/predict",
        "POST",
        b'{"columns": {"age": [1e999], "plan": ["pro"], "visits": [1]}}',
        headers={"Content-Type": "application/json"},
    )
    assert status == 400 and "infinity" in body["error"]
    buffer = io.BytesIO()
    pl.DataFrame({"age": [float("-inf")], "plan": ["pro"], "visits": [1]}).write_ipc_stream(buffer)
    status, _h, body = send(
        f"{server.address}/predict",
        "POST",
        buffer.getvalue(),
        headers={"Content-Type": "application/vnd.apache.arrow.stream"},
    )
    assert status == 422 and body["fields"] == ["age"] and "infinite" in body["error"]
    status, _h, body = send(
        f"{server.address}/predict",
        "POST",
        b"not arrow",
        headers={"Content-Type": "application/vnd.apache.arrow.stream"},
    )
    assert status == 400 and body["kind"] == "malformed_arrow"


def test_422_for_too_many_rows(start_http):
    server = start_http(max_rows=2)
    rows = {"age": [1.0] * 3, "plan": ["pro"] * 3, "visits": [1] * 3}
    status, _h, body = send(f"{server.address}/predict", "POST", {"columns": rows})
    assert status == 422 and "max_rows" in body["hint"]


def test_408_when_the_body_does_not_arrive(server):
    with socket.create_connection(("127.0.0.1", int(server.address.rsplit(":", 1)[1]))) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
            b"application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 408")


def test_503_with_retry_after_when_the_queue_is_full(start_http):
    server = start_http(max_pending=2, read_timeout=5, retry_after=3)
    port = int(server.address.rsplit(":", 1)[1])
    held = []
    for _ in range(2):  # two requests whose bodies are still arriving fill the queue
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
            b"application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        held.append(sock)
    try:
        deadline = time.monotonic() + 5
        while True:
            status, headers, body = send(f"{server.address}/predict", "POST", OK)
            if status == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert status == 503 and headers["retry-after"] == "3"
        assert body["kind"] == "overloaded"
        assert send(f"{server.address}/health")[0] == 200  # health is never shed
    finally:
        for sock in held:
            sock.close()
    assert _eventually(lambda: send(f"{server.address}/predict", "POST", OK)[0] == 200)


def _eventually(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=5),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_feature = st.sampled_from(["age", "plan", "visits", "other", ""])


def _near_valid_columns(n: int) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {
            "columns": st.fixed_dictionaries(
                {
                    "age": st.lists(
                        st.one_of(st.floats(-1e6, 1e6), st.integers(-5, 5)), min_size=n, max_size=n
                    ),
                    "plan": st.lists(
                        st.one_of(
                            st.sampled_from(["basic", "pro"]), st.text(max_size=3), st.none()
                        ),
                        min_size=n,
                        max_size=n,
                    ),
                    "visits": st.lists(
                        st.one_of(st.integers(-100, 100), st.none()), min_size=n, max_size=n
                    ),
                }
            )
        }
    )


_near_valid = st.integers(1, 3).flatmap(_near_valid_columns)
_payloads = st.one_of(
    _near_valid,
    _values,
    st.fixed_dictionaries(
        {"columns": st.dictionaries(_feature, st.lists(_scalars, max_size=4), max_size=4)}
    ),
    st.fixed_dictionaries(
        {"records": st.lists(st.dictionaries(_feature, _scalars, max_size=4), max_size=4)}
    ),
    st.fixed_dictionaries(
        {
            "dataframe_split": st.fixed_dictionaries(
                {
                    "columns": st.lists(_feature, max_size=4),
                    "data": st.lists(st.lists(_scalars, max_size=4), max_size=3),
                }
            )
        }
    ),
    st.fixed_dictionaries(
        {
            "inputs": st.lists(
                st.fixed_dictionaries(
                    {
                        "name": _feature,
                        "shape": st.lists(st.integers(-1, 4), max_size=3),
                        "datatype": st.sampled_from(
                            ["FP64", "INT64", "BYTES", "BOOL", "FP16", "X"]
                        ),
                        "data": _values,
                    }
                ),
                max_size=3,
            )
        }
    ),
)
_routes = st.sampled_from(["/predict", "/invocations", f"/v2/models/{HTTP_MODEL}/infer"])


def test_fuzzed_payloads_never_get_a_5xx(server):
    seen: list[int] = []

    @settings(
        max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(route=_routes, payload=_payloads, raw=st.booleans())
    def check(route, payload, raw):
        body = json.dumps(payload).encode() if not raw else json.dumps(payload)[:-1].encode()
        status, _h, answer = send(
            f"{server.address}{route}", "POST", body, headers={"Content-Type": "application/json"}
        )
        seen.append(status)
        assert status < 500, (route, payload, answer)
        if status >= 400:
            assert answer["error"] and answer["kind"]

    check()
    assert 200 in seen and 422 in seen  # the fuzz reached both sides


def test_stop_drains_requests_in_flight(start_http):
    server = start_http(read_timeout=5)
    port = int(server.address.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    body = json.dumps(OK).encode()
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
        b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:5]
    )
    time.sleep(0.2)
    stopper = threading.Thread(target=server.stop, kwargs={"timeout": 5})
    stopper.start()
    time.sleep(0.2)
    sock.sendall(body[5:])  # the request in flight finishes although stop was called
    sock.settimeout(5)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    sock.close()
    stopper.join(10)
    assert not stopper.is_alive() and not server.ready
