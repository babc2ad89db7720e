"""Worker processes of the registry contract's multi-process tests.

``python -m conveyor.testing.registry_workers register|promote|resolve PROJECT MODEL ...``
(see :func:`main`); :func:`run_workers` starts them and releases them together.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def run_workers(
    project_dir: Path, commands: list[list[str]], *, timeout: float = 120.0
) -> list[dict[str, Any]]:
    """Start one worker process per command, release them together, collect results.

    Each worker opens the project, prints ``ready``, waits for a line on stdin,
    does its work and prints one JSON object (``versions``, ``errors``, ``elapsed``,
    ``finished_at``).  Each result gets two more keys: ``wall``, seconds from the
    release to the last exit, and ``span``, seconds from the release to the moment
    the last worker finished its work (process teardown excluded).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conveyor.testing.registry_workers",
                command[0],
                str(project_dir),
                *command[1:],
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for command in commands
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stderr is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise AssertionError(f"worker failed to start: {line}{proc.stderr.read()}")
        started = time.perf_counter()
        released = time.time()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise AssertionError(f"worker exited {proc.returncode}: {err}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        wall = time.perf_counter() - started
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    span = max(r.get("finished_at", released) for r in results) - released
    for result in results:
        result["wall"] = wall
        result["span"] = span
    return results


def main(argv: list[str] | None = None) -> None:
    """Worker entry point: ``register|promote|resolve PROJECT_DIR MODEL ...``."""
    from conveyor.app import Conveyor

    args = list(sys.argv[1:] if argv is None else argv)
    command, project, model = args[0], args[1], args[2]
    app = Conveyor.load(cwd=project)
    registry = app.registry
    # open everything a registration touches before the start signal, so the timed
    # part measures registrations, not imports
    registry.list_models()
    app.artifacts.exists("warm-up/nothing")
    import conveyor.events  # noqa: F401 - a registration's event classes (attrs compiles ~14 ms)

    print("ready", flush=True)
    sys.stdin.readline()
    versions: list[int] = []
    ids: list[int] = []
    errors: list[str] = []
    started = time.perf_counter()
    if command == "register":
        count, uri, sha = int(args[3]), args[4], args[5]
        for _ in range(count):
            try:
                versions.append(registry.register(model, artifact_uri=uri, sha256=sha).version)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
    elif command == "promote":
        count, rng = int(args[3]), random.Random(int(args[4]))
        candidates = [v.version for v in registry.list_versions(model)]
        for _ in range(count):
            target = rng.choice(candidates)
            try:
                change = registry.set_alias(model, "production", target, actor=f"p{args[4]}")
                if change.to_version != target:
                    errors.append(f"moved to v{target} but the record says {change!r}")
                versions.append(target)
                ids.append(change.id)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
    elif command == "resolve":
        deadline = time.monotonic() + float(args[3])
        while time.monotonic() < deadline:
            try:
                mv = registry.resolve(model, "production")
                if mv is None or mv.stage != "production" or "production" not in mv.aliases:
                    errors.append(f"read saw no single production holder: {mv!r}")
                else:
                    versions.append(mv.version)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
    else:
        raise SystemExit(f"unknown worker command {command!r}")
    elapsed = time.perf_counter() - started
    finished_at = time.time()
    app.close()
    print(
        json.dumps(
            {
                "versions": versions,
                "ids": ids,
                "errors": errors,
                "elapsed": elapsed,
                "finished_at": finished_at,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
