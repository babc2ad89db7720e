"""`conveyor watch` as real processes: two watchers on one store, SIGKILL, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conveyor.plugins.sqlite.metadata import SQLiteMetadataStore

PIPELINE = """
import os, time
from conveyor.pipeline import pipeline, step


@step
def work():
    hold = os.environ.get("HOLD_FILE")
    while hold and os.path.exists(hold):  # a long run, until the test lets it end
        time.sleep(0.05)
    return {"done": 1}


@pipeline
def training():
    work()
"""


def make_project(root: Path, triggers: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipe.py").write_text(PIPELINE)
    (root / "conveyor.toml").write_text(
        '[pipelines.training]\ntarget = "pipe:training"\n' + triggers
    )
    return root


def watch(
    root: Path, *args: str, clock: str | None = None, hold: Path | None = None
) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    if clock:
        env["CONVEYOR_WATCH_CLOCK"] = clock
    if hold:
        env["HOLD_FILE"] = str(hold)
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", "watch", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def store(root: Path) -> SQLiteMetadataStore:
    return SQLiteMetadataStore(path=root / ".conveyor" / "conveyor.db")


def wait_for_running(root: Path, deadline_s: float = 30) -> str:
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        if (root / ".conveyor" / "conveyor.db").exists():
            meta = store(root)
            running = meta.search_runs(status="running", limit=1)
            meta.close()
            if running:
                return running[0].id
        time.sleep(0.1)
    raise AssertionError("no run started")


def test_two_watchers_on_one_store_run_each_of_200_ticks_once(tmp_path):
    # single_flight off: the two run side by side, so only the run key keeps a tick
    # from running twice (and 200 runs fit the time budget)
    root = make_project(
        tmp_path / "p",
        '[triggers.minutely]\nbackend = "cron"\n'
        'schedule = "* * * * *"\ncatch_up = "all"\npipeline = "training"\n'
        "single_flight = false\n",
    )
    store(root).close()  # create and migrate the store before the race
    start = datetime(2024, 1, 1, tzinfo=UTC)
    # both processes share one simulated clock: 600x (a minute in 0.1 s), at `start`
    # 3 s from now
    clock = f"{start.isoformat()}@{time.time() + 3}x600"
    until = (start + timedelta(minutes=200)).isoformat()
    procs = [watch(root, "--interval", "60s", "--until", until, clock=clock) for _ in range(2)]
    logs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    meta = store(root)
    events = [e for e in meta.list_trigger_events(trigger="minutely", limit=2000) if e.fired]
    runs = meta.search_runs(pipeline="training", limit=2000)
    ticks = sorted(datetime.fromisoformat(e.details["tick"]) for e in events)
    assert ticks, logs
    assert len(set(ticks)) == len(ticks), "no tick fired twice"
    assert ticks[0] <= start
    assert ticks[-1] >= start + timedelta(minutes=200), logs[0][1][-3000:]
    assert ticks == [ticks[0] + timedelta(minutes=n) for n in range(len(ticks))], "none missed"
    assert len(runs) == len(events), "one run per firing"
    assert sorted(r.trigger_event for r in runs) == sorted(e.id for e in events)
    assert {r.status for r in runs} == {"succeeded"}
    started = [sum("run succeeded" in line for line in err.splitlines()) for _, err in logs]
    assert sum(started) == len(runs), "each run was started by exactly one watcher"
    meta.close()


def watch_a_long_run(tmp_path: Path, *args: str) -> tuple[Path, Path, subprocess.Popen, str]:
    """A watcher running a yearly tick's run that lasts until ``hold`` is removed."""
    root = make_project(
        tmp_path / "p",
        '[triggers.yearly]\nbackend = "cron"\nschedule = "0 0 1 1 *"\npipeline = "training"\n',
    )
    hold = tmp_path / "hold"
    hold.touch()
    proc = watch(root, "--interval", "1s", *args, hold=hold)
    return root, hold, proc, wait_for_running(root)


def test_sigkill_mid_run_then_restart(tmp_path):
    root, hold, first, run_id = watch_a_long_run(tmp_path, "--lease-ttl", "2s")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    hold.unlink()
    meta = store(root)
    lease = meta.get_lease("pipeline:training")
    assert lease is not None
    assert meta.get_run(run_id).status == "running", "nobody recorded the end"
    # once the lease lapsed, a restart records the run interrupted and starts nothing
    time.sleep(max(0.0, (lease.expires - datetime.now(UTC)).total_seconds()) + 0.2)
    again = watch(root, "--once", "--lease-ttl", "2s")
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    run = meta.get_run(run_id)
    assert run.status == "interrupted"
    assert "stopped renewing the lease" in run.error
    assert f"run {run_id}" in err
    events = [e for e in meta.list_trigger_events(trigger="yearly") if e.fired]
    assert len(events) == 1
    assert [r.id for r in meta.search_runs(pipeline="training")] == [run_id], (
        "no second run for the same key"
    )
    meta.close()


def test_sigterm_lets_the_running_pipeline_finish(tmp_path):
    root, hold, proc, run_id = watch_a_long_run(tmp_path)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert proc.poll() is None, "it waits for the run"
    hold.unlink()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "SIGTERM" in err
    meta = store(root)
    assert meta.get_run(run_id).status == "succeeded"
    assert meta.get_lease("pipeline:training") is None, "released on the way out"
    meta.close()
