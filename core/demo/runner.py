"""The demo's stages, in order, each through the public machinery a real project uses.

1. data: a scaffolded project and six weeks of data, a shift injected at week 5;
2. the first model: the project's training pipeline (feature store, point-in-time
   training set, train, evaluate, gate, register, promote), as ``conveyor run`` runs it;
3. serving: the bundled ``http`` server on a free loopback port;
4. traffic: weeks 4 (before the shift) and 5 (after) replayed over HTTP;
5. monitoring: skew against the training profile, estimated performance (CBPE);
6. labels of weeks 4-5 arrive: a new data batch, realized performance;
7. the drift trigger, evaluated and launched by the watcher (``conveyor watch --once``),
   while week 6 keeps flowing; the retrained model is gated, promoted and hot-swapped;
8. labels of week 6 arrive: the retrained model's measured performance.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.demo.project import MODEL, SHIFT_DAY, TRIGGER, Size
from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    import polars as pl

    from conveyor.app import Conveyor

Say = Callable[[str], None]
SUMMARY = "demo-summary.json"
DRIFT_REPORT = "reports/drift.html"
PERFORMANCE_REPORT = "reports/performance.html"


def _rows(frame: pl.DataFrame, prefix: str, names: list[str]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{prefix}-{i}", row) for i, row in enumerate(frame.select(names).iter_rows(named=True))
    ]


def _labels(frame: pl.DataFrame, prefix: str) -> pl.DataFrame:
    import polars as pl

    return frame.select(
        pl.format(f"{prefix}-{{}}", pl.int_range(pl.len())).alias("request_id"), "label"
    )


def first_run(app: Conveyor, say: Say) -> Any:
    """Run the training pipeline now, recorded as a manual trigger (as ``conveyor run``)."""
    from conveyor.events import TriggerFired
    from conveyor.pipeline import load_pipeline
    from conveyor.runs import run_pipeline
    from conveyor.runs.resolve import resolve_pipeline

    name, target, parameters = resolve_pipeline(app.config, "training")
    event = app.metadata.record_trigger_event(
        "manual", "conveyor demo: the first model", details={"pipeline": name}
    )
    app.emit(
        "on_trigger_fired",
        TriggerFired(trigger="manual", reason=event.reason, event_id=event.id, details={}),
    )

    def progress(node: str, status: str, outcome: Any) -> None:
        if status != "running":
            say(f"      {node:<22} {status:<9} {outcome.duration_s:6.2f}s")

    graph = load_pipeline(target).build(**parameters)
    return run_pipeline(app, graph, trigger_event=event.id, progress=progress)


def _wait_logged(app: Conveyor, version: int, since: datetime, rows: int) -> datetime:
    """Wait until the server's prediction log holds ``rows`` rows of ``version`` since
    ``since``; the end of the window (just after the newest logged row)."""
    import polars as pl

    from conveyor.predictions import scan_predictions

    deadline = time.monotonic() + 30
    while True:
        frame = scan_predictions(app.artifacts, model=MODEL, version=version, start=since)
        logged = (
            frame.select(pl.len(), pl.col("time").max()).collect()
            if "time" in (frame.collect_schema().names())
            else None
        )
        if logged is not None and logged.item(0, 0) >= rows:
            return logged.item(0, 1) + timedelta(microseconds=1)
        if time.monotonic() > deadline:
            raise ConveyorError(
                f"the server logged {0 if logged is None else logged.item(0, 0)} of {rows} "
                "predictions within 30 s",
                hint="check the server's log (prediction logging may be off)",
            )
        time.sleep(0.2)


def wait_until(condition: Callable[[], bool], seconds: float, message: str) -> None:
    """Poll ``condition`` until it holds; a ConveyorError after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise ConveyorError(message, hint="the machine may be overloaded; run the demo again")
        time.sleep(0.05)


def _write_report(path: Path, monitored: Any) -> Path:
    from conveyor.monitoring.report import render_html

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(render_html(monitored.result, monitored.report), encoding="utf-8")
    tmp.replace(path)
    return path


def _auc(monitored: Any, estimated: bool = False) -> float | None:
    key = "estimated" if estimated else "value"
    values = [getattr(w, key) for w in monitored.report.windows if getattr(w, key) is not None]
    return values[0] if values else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def run_demo(directory: Path, size: Size, say: Say) -> dict[str, Any]:
    """Every stage of the demo in ``directory``; returns (and writes) the summary."""
    import polars as pl

    from conveyor.app import Conveyor
    from conveyor.demo.project import generate_weeks, prepare, write_parquet, write_project

    began = time.perf_counter()
    directory = prepare(directory)
    write_project(directory, size)
    weeks = generate_weeks(size)
    history = weeks.filter(pl.col("day") < SHIFT_DAY - 7).drop("day")
    week = {n: weeks.filter(pl.col("day").is_between(7 * n - 7, 7 * n - 1)) for n in (4, 5, 6)}
    write_parquet(history, directory / "data" / "batch-0001.parquet")
    say(
        f"[1/8] Data: {weeks.height:,} time-stamped rows over 6 weeks "
        f"({weeks['entity_id'].n_unique():,} customers, 23 features, a delayed label); "
        "from week 5 on f00, f01, f02 move by 2 sd and 'region' swaps its shares and "
        "gains an unseen category"
    )
    say(f"      project {directory} (conveyor init + a server and a drift trigger)")
    say(f"      weeks 1-3 ({history.height:,} labelled rows) are the first training data")

    app = Conveyor.load(cwd=directory)
    try:
        say(
            "[2/8] First model: feature views, a point-in-time training set, train, "
            "gate, register, promote"
        )
        first = first_run(app, say)
        if not first.ok:
            raise ConveyorError(f"the first training run failed: {first.error}", hint=first.hint)
        v1 = app.registry.resolve(MODEL, "production")
        if v1 is None:
            raise ConveyorError("the first model was not promoted to production")
        say(
            f"      {MODEL} v{v1.version} is production "
            f"(holdout AUC {v1.metrics.get('auc', 0):.3f})"
        )

        server = app.server
        server.start()
        try:
            return _serve_and_retrain(app, server, directory, size, week, v1, say, began)
        finally:
            server.stop(timeout=10)
    finally:
        app.close()


def _serve_and_retrain(
    app: Any,
    server: Any,
    directory: Path,
    size: Size,
    week: dict[int, Any],
    v1: Any,
    say: Say,
    began: float,
) -> dict[str, Any]:
    import polars as pl

    from conveyor.demo.project import write_parquet
    from conveyor.demo.traffic import Traffic
    from conveyor.monitoring.service import monitor_drift, monitor_performance
    from conveyor.watch import Watcher

    wait_until(lambda: server.ready, 30, "the server did not become ready within 30 s")
    say(
        f"[3/8] Serving {MODEL} v{v1.version} at {server.address} "
        "(bundled http server, follows the registry)"
    )
    names = list(v1.signature.names)
    traffic = Traffic(server.address, clients=size.clients)
    phase = {
        n: week[n].sample(min(size.phase_rows, week[n].height), seed=n).sort("event_timestamp")
        for n in (4, 5)
    }

    say(
        f"[4/8] Live traffic: week 4 then week 5 replayed over HTTP by {size.clients} "
        "clients, one row per request"
    )
    t4 = datetime.now(UTC)
    seconds = traffic.send(_rows(phase[4], "w4", names))
    t5 = _wait_logged(app, v1.version, t4, phase[4].height)
    say(
        f"      week 4: {phase[4].height:,} requests in {seconds:.1f}s "
        f"({phase[4].height / seconds:,.0f}/s)"
    )
    seconds = traffic.send(_rows(phase[5], "w5", names))
    t5_end = _wait_logged(app, v1.version, t5, phase[5].height)
    say(
        f"      week 5: {phase[5].height:,} requests in {seconds:.1f}s, "
        f"{traffic.stats.failed} failed"
    )

    say("[5/8] Monitoring the prediction log against the training profile")
    before = monitor_drift(app, MODEL, kind="skew", since=t4, until=t5)
    after = monitor_drift(app, MODEL, kind="skew", since=t5, until=t5_end)
    for label, monitored in (("week 4", before), ("week 5", after)):
        drifted = ", ".join(monitored.report.drifted_features) or "-"
        say(
            f"      {label}: "
            + (f"DRIFT in {drifted}" if monitored.result.breached else "no drift")
        )
    drift_report = _write_report(directory / DRIFT_REPORT, after)
    est4 = monitor_performance(app, MODEL, since=t4, until=t5, every=t5 - t4)
    est5 = monitor_performance(app, MODEL, since=t5, until=t5_end, every=t5_end - t5)
    say(
        f"      estimated AUC before labels (CBPE): week 4 {_fmt(_auc(est4, True))}, "
        f"week 5 {_fmt(_auc(est5, True))}"
    )

    say(
        "[6/8] Labels of weeks 4-5 arrive: a new labelled batch lands in data/, "
        "weeks 1-3 move to data/archive/"
    )
    labels_dir = directory / "labels"
    write_parquet(
        pl.concat([_labels(phase[4], "w4"), _labels(phase[5], "w5")]),
        labels_dir / "weeks-4-5.parquet",
    )
    write_parquet(
        pl.concat([week[4], week[5]]).drop("day"), directory / "data" / "batch-0002.parquet"
    )
    # the training window rolls: the time split would otherwise keep nearly every
    # shifted row out of the training part (it is the newest fifth of weeks 1-5)
    archive = directory / "data" / "archive"
    archive.mkdir()
    (directory / "data" / "batch-0001.parquet").replace(archive / "batch-0001.parquet")
    labels = str(labels_dir / "*.parquet")
    real4 = monitor_performance(app, MODEL, labels=labels, since=t4, until=t5, every=t5 - t4)
    real5 = monitor_performance(
        app, MODEL, labels=labels, since=t5, until=t5_end, every=t5_end - t5
    )
    say(
        f"      measured AUC of v{v1.version}: week 4 {_fmt(_auc(real4))}, "
        f"week 5 {_fmt(_auc(real5))}"
    )

    say(
        f"[7/8] The '{TRIGGER}' trigger, evaluated by the watcher "
        "(conveyor watch --once) while week 6 flows"
    )
    week6 = week[6].sort("event_timestamp")
    t6 = datetime.now(UTC)
    traffic.start_loop(_rows(week6, "w6", names))
    watcher = Watcher(app=app, names=[TRIGGER])
    try:
        outcomes = watcher.tick()
        fired = [o for o in outcomes if o.fired]
        if not fired or not watcher.launches:
            raise ConveyorError(
                "the drift trigger did not fire: "
                + (outcomes[-1].reason if outcomes else "not evaluated"),
                hint="the demo's data should drift; see `conveyor triggers history`",
            )
        say(f"      fired: {fired[0].reason}")
        launched = watcher.launches[0]
        say(f"      retraining run {launched.run_id}: {launched.status}")
        v2 = app.registry.resolve(MODEL, "production")
        if v2 is None or v2.version == v1.version:
            raise ConveyorError(
                f"the retrained model was not promoted ({launched.reason})",
                hint=f"see `conveyor runs show {launched.run_id}`",
            )
        say(
            f"      {MODEL} v{v2.version} passed the gate and is production; "
            "waiting for the server's swap"
        )
        wait_until(
            lambda: traffic.answered_by(v2.version) >= size.phase_rows,
            120,
            "the server did not swap to the new version within 120 s",
        )
    finally:
        traffic.stop()
    stats = traffic.stats
    say(
        f"      hot-swapped under load: {stats.ok:,} requests answered "
        f"({', '.join(f'v{k}: {n:,}' for k, n in sorted(stats.by_version.items()))}), "
        f"{stats.failed} failed"
    )

    say("[8/8] Labels of week 6 arrive: measured performance of the retrained model")
    t6_end = _wait_logged(app, v2.version, t6, traffic.answered_by(v2.version))
    from conveyor.predictions import scan_predictions

    sent = scan_predictions(app.artifacts, model=MODEL, start=t6).select("request_id").collect()
    base = _labels(week6, "w6")
    w6 = (
        sent.with_columns(pl.col("request_id").str.split(".").list.first().alias("base"))
        .join(base.rename({"request_id": "base"}), on="base")
        .select("request_id", "label")
    )
    write_parquet(w6, labels_dir / "week-6.parquet")
    old6, real6 = (
        monitor_performance(
            app, MODEL, version=v, labels=labels, since=t6, until=t6_end, every=t6_end - t6
        )
        for v in (v1.version, v2.version)
    )
    perf_report = _write_report(directory / PERFORMANCE_REPORT, real6)
    say(
        f"      measured AUC of v{v1.version}: week 4 {_fmt(_auc(real4))}, week 5 "
        f"{_fmt(_auc(real5))}, week 6 {_fmt(_auc(old6))}"
    )
    say(f"      measured AUC of v{v2.version} on week 6: {_fmt(_auc(real6))}")

    summary = {
        "model": MODEL,
        "versions": [v.version for v in app.registry.list_versions(MODEL)],
        "production": v2.version,
        "retrain_run": launched.run_id,
        "trigger_event": launched.event_id,
        "traffic": stats.to_dict(),
        "auc": {
            "v1_week4": _auc(real4),
            "v1_week5": _auc(real5),
            "v1_week6": _auc(old6),
            "v2_week6": _auc(real6),
            "v1_week4_estimated": _auc(est4, True),
            "v1_week5_estimated": _auc(est5, True),
        },
        "drift": {"week4": list(before.result.breached), "week5": list(after.result.breached)},
        "reports": [str(drift_report), str(perf_report)],
        "seconds": round(time.perf_counter() - began, 1),
    }
    (directory / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
