"""``conveyor serve`` (several workers on one port) and ``conveyor loadtest`` end to end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from .conftest import HTTP_TOKEN, register_rich_model, send, write_server_config


def conveyor_exe():
    found = shutil.which("conveyor", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "conveyor"]


def test_serve_with_workers_and_loadtest_against_it(conveyor_app):
    register_rich_model(conveyor_app)
    write_server_config(conveyor_app, token=HTTP_TOKEN)
    env = {**os.environ, "CONVEYOR_SERVER_TOKEN": HTTP_TOKEN}
    proc = subprocess.Popen(
        [*conveyor_exe(), "serve", "--port", "0", "--workers", "2"],
        cwd=conveyor_app.root,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert "serving churn (alias production) at http://127.0.0.1:" in line, line
        url = line.rsplit(" ", 1)[1].strip()
        assert send(f"{url}/health")[0] == 200
        assert send(f"{url}/model")[0] == 401
        run = subprocess.run(
            [
                *conveyor_exe(),
                "loadtest",
                url,
                "--requests",
                "300",
                "-c",
                "4",
                "--protocol",
                "v2",
                "--max-latency",
                "p99=5000",
                "--json",
            ],
            cwd=conveyor_app.root,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        assert result["requests"] == 300 and result["errors"] == 0
        assert result["statuses"] == {"200": 300} and result["missed"] == []
        missed = subprocess.run(
            [
                *conveyor_exe(),
                "loadtest",
                url,
                "--requests",
                "20",
                "--max-latency",
                "p50=0.0001",
                "--rows",
                "5",
            ],
            cwd=conveyor_app.root,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert missed.returncode == 1 and "budget missed: p50" in missed.stderr
        assert "20 requests" in missed.stdout
        unauthorized = subprocess.run(
            [*conveyor_exe(), "loadtest", url, "--requests", "1"],
            cwd=conveyor_app.root,
            capture_output=True,
            text=True,
            env={**env, "CONVEYOR_SERVER_TOKEN": ""},
            timeout=60,
            check=False,
        )
        assert unauthorized.returncode == 1 and "--token" in unauthorized.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            send(f"{url}/health", timeout=1)
        except OSError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the port is still open after SIGTERM")


def test_serve_refuses_a_public_host_without_a_token(conveyor_app):
    register_rich_model(conveyor_app)
    write_server_config(conveyor_app)
    run = subprocess.run(
        [*conveyor_exe(), "serve", "--host", "0.0.0.0", "--port", "0"],
        cwd=conveyor_app.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    assert "no bearer token" in run.stderr and "CONVEYOR_SERVER_TOKEN" in run.stderr
