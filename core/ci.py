"""``conveyor check``: the one CI gate of a project, stage by stage.

1. **config**: the config loads, every plugin loads, every backend is installed and
   configured (the preflight of ``conveyor config check``).
2. **pipelines**: every ``[pipelines]`` entry imports and builds a valid graph.
3. **dry run**: every pipeline runs on a scratch copy of the project (its files, on
   empty embedded stores in a temporary directory), so nothing stored changes; a
   failure in a validation or ingest step is reported as a **data contract**
   violation on that sample.
4. **serving**: the latest registered candidate of the dry run is served by the
   configured server in the scratch copy, answers one smoke request and meets the
   latency budget under a short built-in load test.

Each stage yields :class:`Stage` results; a failed stage stops the ones that need it.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attrs import Factory, define, frozen

from conveyor.errors import ConveyorError

#: step-name prefixes whose failure means the data broke its contract
CONTRACT_STEPS = ("validate", "ingest", "load_data")
#: URL schemes of stores outside the project folder: a dry run would write to them
REMOTE_SCHEMES = ("postgresql", "postgres", "redis", "s3")


@frozen(kw_only=True)
class Stage:
    """The outcome of one check stage.

    Attributes:
        name: ``config``, ``pipelines``, ``contracts``, ``dry_run`` or ``serving``.
        ok: it passed (``None``: skipped, the message says why).
        message: what was found, in one line.
        hint: how to fix it, when it failed.
        details: facts for the report (metrics, latency, verdict).
    """

    name: str
    ok: bool | None
    message: str
    hint: str | None = None
    details: dict[str, Any] = Factory(dict)


@define
class CheckReport:
    """Every stage of one ``conveyor check``."""

    stages: list[Stage] = Factory(list)

    @property
    def ok(self) -> bool:
        return all(s.ok is not False for s in self.stages)

    def add(self, stage: Stage) -> Stage:
        self.stages.append(stage)
        return stage

    def markdown(self) -> str:
        """A summary for a pull-request comment."""
        mark = {True: "✅ pass", False: "❌ FAIL", None: "⏭ skipped"}
        lines = [
            f"## conveyor check: {'passed' if self.ok else 'FAILED'}",
            "",
            "| stage | result | details |",
            "|---|---|---|",
        ]
        for s in self.stages:
            text = s.message.replace("|", "\\|") + (f" (hint: {s.hint})" if s.hint else "")
            lines.append(f"| {s.name} | {mark[s.ok]} | {text} |")
        for s in self.stages:
            candidate = s.details.get("candidate")
            if candidate:
                lines += ["", f"### Candidate {candidate}", ""]
                lines += ["| metric | candidate | production |", "|---|---|---|"]
                production = s.details.get("production_metrics", {})
                for key, value in sorted(s.details.get("metrics", {}).items()):
                    other = production.get(key)
                    lines.append(
                        f"| {key} | {value:.4g} | {'-' if other is None else f'{other:.4g}'} |"
                    )
                lines += ["", f"Gate verdict: {s.details.get('verdict', '-')}"]
            if "latency" in s.details:
                lat = s.details["latency"]
                lines += [
                    "",
                    f"Latency under load: p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms, "
                    f"{lat['rps']:.0f} req/s, error rate {lat['error_rate']:.2%} "
                    f"(budget {s.details['budget'] or 'none'})",
                ]
        return "\n".join(lines) + "\n"


def run_check(
    state: Any,
    *,
    parameters: Mapping[str, Any],
    budget: Any,
    duration: float,
    concurrency: int,
) -> CheckReport:
    """Run every stage for the CLI state ``state`` (config path, profile, manager)."""
    report = CheckReport()
    app = _config_stage(state, report)
    if app is None:
        return report
    graphs = _pipelines_stage(app, report, parameters)
    if graphs is None:
        return report
    scratch = _dry_run_stage(state, app, report, graphs)
    if scratch is None:
        return report
    try:
        _serving_stage(
            app, scratch, report, budget=budget, duration=duration, concurrency=concurrency
        )
    finally:
        scratch.close()
        shutil.rmtree(scratch.root.parent, ignore_errors=True)
    return report


def _config_stage(state: Any, report: CheckReport) -> Any:
    try:
        app = state.app
    except ConveyorError as exc:
        report.add(Stage(name="config", ok=False, message=exc.message, hint=exc.hint))
        return None
    problems = [f"plugin {info.name}: {info.error}" for info in state.pm.failures()]
    findings = app.preflight()
    problems += [f"[{f.subject}] {f.message}" for f in findings if f.blocking]
    if problems:
        hint = next((f.details.get("hint") for f in findings if f.details.get("hint")), None)
        report.add(Stage(name="config", ok=False, message="; ".join(problems), hint=hint))
        return None
    report.add(Stage(name="config", ok=True, message="config, plugins and backends load"))
    return app


def _pipelines_stage(
    app: Any, report: CheckReport, parameters: Mapping[str, Any]
) -> dict[str, Any] | None:
    from conveyor.pipeline import load_pipeline
    from conveyor.runs.resolve import resolve_pipeline

    names = sorted(app.config.section("pipelines"))
    if not names:
        report.add(
            Stage(
                name="pipelines",
                ok=False,
                message=f"no [pipelines] in {app.config.where}",
                hint='add [pipelines.training] target = "module:function"',
            )
        )
        return None
    graphs = {}
    for name in names:
        try:
            _, target, configured = resolve_pipeline(app.config, name)
            graphs[name] = load_pipeline(target).build(**{**configured, **parameters})
        except ConveyorError as exc:
            report.add(
                Stage(
                    name="pipelines",
                    ok=False,
                    message=f"pipeline {name}: {exc.message}",
                    hint=exc.hint,
                )
            )
            return None
    steps = sum(len(g.nodes) for g in graphs.values())
    report.add(
        Stage(
            name="pipelines",
            ok=True,
            message=f"{len(graphs)} pipeline(s) import and build ({steps} steps)",
        )
    )
    return graphs


def _remote_store(app: Any) -> str | None:
    from conveyor.config import BACKEND_SECTIONS

    for section in BACKEND_SECTIONS.values():
        url = str(app.config.data.get(section, {}).get("url") or "")
        if url.split(":", 1)[0] in REMOTE_SCHEMES:
            return f"[{section}] url is {url.split(':', 1)[0]}://..."
    return None


def scratch_copy(config: Any, pm: Any, base: Path | None = None) -> Any:
    """An app on a copy of ``config``'s project folder, in ``base`` (default: a new
    private temporary directory).

    The copy holds the project's files (code, config, data) but not its state
    (``.conveyor/``): its stores start empty, so what it records and registers stays
    there.  It shares the manager and the imported code.
    """
    from conveyor.app import Conveyor
    from conveyor.config import STATE_DIR

    base = base if base is not None else Path(tempfile.mkdtemp(prefix="conveyor-check-"))
    root = base / config.root.name
    ignore = shutil.ignore_patterns(".git", "__pycache__", STATE_DIR)
    shutil.copytree(config.root, root, ignore=ignore, symlinks=True)
    scratch = type(config)(
        root=root,
        file=None if config.file is None else root / config.file.relative_to(config.root),
        profile=config.profile,
        data=copy.deepcopy(config.data),
        sources=dict(config.sources),
    )
    return Conveyor(config=scratch, pm=pm)


def _dry_run_stage(state: Any, app: Any, report: CheckReport, graphs: dict[str, Any]) -> Any:
    from conveyor.runs import run_pipeline

    remote = _remote_store(app)
    if remote is not None:
        report.add(
            Stage(
                name="dry_run",
                ok=None,
                message=f"skipped: {remote}, outside the project, and a dry run must not "
                "write there",
                hint="run conveyor check with a profile on the embedded stores",
            )
        )
        return None
    scratch = scratch_copy(app.config, app.pm)
    for name, graph in graphs.items():
        result = run_pipeline(scratch, graph, use_cache=False)
        if result.ok or result.status == "refused":
            continue
        failed = next(
            (o for o in result.steps.values() if o.status in ("failed", "timed_out")), None
        )
        step = failed.node if failed is not None else "-"
        error = (failed.error if failed is not None else None) or result.error or result.status
        contract = step.startswith(CONTRACT_STEPS)
        report.add(
            Stage(
                name="contracts" if contract else "dry_run",
                ok=False,
                message=(
                    f"the sample data breaks the contract at step {step} of {name}: {error}"
                    if contract
                    else f"pipeline {name} failed at step {step}: {error}"
                ),
                hint=(failed.hint if failed is not None else None) or result.hint,
            )
        )
        scratch.close()
        shutil.rmtree(scratch.root.parent, ignore_errors=True)
        return None
    report.add(Stage(name="contracts", ok=True, message="the data validation steps pass"))
    report.add(
        Stage(
            name="dry_run",
            ok=True,
            message=f"{', '.join(graphs)} ran on a scratch copy of the project",
        )
    )
    return scratch


def _serving_stage(
    real: Any,
    app: Any,
    report: CheckReport,
    *,
    budget: Any,
    duration: float,
    concurrency: int,
) -> None:
    """Serve the dry run's candidate (``app`` is the scratch copy, ``real`` the project)."""
    from conveyor.candidates import list_candidates

    candidates = list_candidates(app, limit=1)
    if not candidates:
        report.add(Stage(name="serving", ok=None, message="skipped: no candidate model"))
        return
    candidate = candidates[0]
    details: dict[str, Any] = {
        "candidate": f"{candidate.model} (run {candidate.run_id[:12]})",
        "metrics": candidate.metrics,
        "verdict": "passed" if candidate.passed else "REFUSED: " + "; ".join(candidate.reasons),
    }
    production = real.registry.resolve(candidate.model, "production") if candidate.model else None
    if production is not None:
        details["production_metrics"] = dict(production.metrics)
    if candidate.version is None:
        report.add(
            Stage(
                name="serving",
                ok=None,
                message="skipped: the gate did not register the latest candidate",
                details=details,
            )
        )
        return
    details["candidate"] = f"{candidate.model} v{candidate.version}"
    report.add(_serve_and_load(app, candidate, details, budget, duration, concurrency))


def _serve_and_load(
    app: Any,
    candidate: Any,
    details: dict[str, Any],
    budget: Any,
    duration: float,
    concurrency: int,
) -> Stage:
    from conveyor.cli._loadtest import build_request, fetch_signature, run_load

    alias = "ci-check"
    app.registry.set_alias(
        candidate.model, alias, candidate.version, actor="conveyor check", reason="CI"
    )
    app.config.data["server"] = {
        **app.config.data.get("server", {}),
        "model": candidate.model,
        "alias": alias,
        "host": "127.0.0.1",
        "port": 0,
    }
    name = f"{candidate.model} v{candidate.version}"
    try:
        server = app.server
        server.start()
    except ConveyorError as exc:
        return Stage(
            name="serving",
            ok=False,
            message=f"{name} does not load in the server: {exc.message}",
            hint=exc.hint,
            details=details,
        )
    try:
        url, token = server.address, server.settings.token
        signature, model = fetch_signature(url, token)
        request = build_request(url, "predict", model, signature, 1, token)
        smoke = run_load(url, request, concurrency=1, duration=10.0, count=1)
        if smoke.error_rate > 0:
            return Stage(
                name="serving",
                ok=False,
                message=f"{name} fails the smoke request (POST /predict of one row built "
                "from its signature)",
                hint="conveyor serve it locally and send the request to see the error",
                details=details,
            )
        load = run_load(url, request, concurrency=concurrency, duration=duration)
    finally:
        server.stop(timeout=5)
    details["latency"] = load.to_dict()
    details["budget"] = ", ".join(
        f"{key} <= {getattr(budget, key + '_ms'):g} ms"
        for key in ("p50", "p95", "p99")
        if getattr(budget, key + "_ms") is not None
    )
    missed = budget.missed(load)
    return Stage(
        name="serving",
        ok=not missed,
        message=(f"{name}: " + ("; ".join(missed) if missed else load.summary())),
        hint="raise --max-latency, or make the model cheaper" if missed else None,
        details=details,
    )


__all__ = ["CheckReport", "Stage", "run_check", "scratch_copy"]
