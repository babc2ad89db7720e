"""Candidates: every model a pipeline run trained and put before the gate.

A refused candidate is never registered (so never promoted), but nothing about
it is lost: its model, its gate verdict and its metrics stay stored as the
run's step outputs.  This module reads them back from the metadata store (no
table of its own): ``conveyor models candidates`` lists them and the run summary
of ``conveyor run`` shows the run's own.

A run's candidate is found by the metrics the stock steps of
:mod:`conveyor.training` log: ``gate_passed`` (``gate``), ``registered_version``
(``register_model``) and ``promoted_aliases`` (``promote``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attrs import Factory, frozen


@frozen(kw_only=True)
class Candidate:
    """One candidate model of one run, with the gate's verdict and what followed.

    Attributes:
        run_id: the run that trained it.
        pipeline: that run's pipeline.
        started: when the run started.
        run_status: the run's status (``refused`` when the gate said no).
        model: the model name the gate judged it for (``""`` when not given).
        passed: the gate's verdict.
        metrics: the candidate's metrics on the holdout.
        reasons: why the gate refused it (its blocking findings), empty when passed.
        report: the gate's full report.
        artifact_uri: where the candidate (the gate's ``model`` input) is stored.
        version: the registered version, ``None`` when it was not registered.
        promotion: per alias, what promotion did (``promoted``, ``already`` or why not).
    """

    run_id: str
    pipeline: str
    started: datetime
    run_status: str
    model: str = ""
    passed: bool
    metrics: dict[str, float] = Factory(dict)
    reasons: tuple[str, ...] = ()
    report: str = ""
    artifact_uri: str | None = None
    version: int | None = None
    promotion: dict[str, str] = Factory(dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "started": self.started.isoformat(),
            "run_status": self.run_status,
            "model": self.model,
            "passed": self.passed,
            "metrics": self.metrics,
            "reasons": list(self.reasons),
            "report": self.report,
            "artifact_uri": self.artifact_uri,
            "version": self.version,
            "promotion": self.promotion,
        }


def run_candidate(app: Any, run_id: str) -> Candidate | None:
    """The candidate of run ``run_id`` (``None``: the run reached no gate)."""
    from conveyor.runs.outcome import read_output

    run = app.metadata.get_run(run_id)
    gate = next((s for s in run.steps if "gate_passed" in s.metrics), None)
    if gate is None:
        return None
    verdict = _read(app, read_output, next(iter(gate.outputs.values()), None))
    evidence = getattr(verdict, "evidence", {}) or {}
    metrics = (evidence.get("candidate") or {}).get("metrics") or {}
    registered = next((s for s in run.steps if "registered_version" in s.metrics), None)
    promoted = next((s for s in run.steps if "promoted_aliases" in s.metrics), None)
    promotion = (
        _read(app, read_output, next(iter(promoted.outputs.values()), None))
        if promoted is not None
        else None
    )
    model = gate.inputs.get("model")
    return Candidate(
        run_id=run.id,
        pipeline=run.pipeline,
        started=run.started,
        run_status=run.status,
        model=str(evidence.get("model") or ""),
        passed=bool(gate.metrics["gate_passed"]),
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        reasons=tuple(getattr(verdict, "reasons", ())),
        report=verdict.report() if verdict is not None else (run.error or ""),
        artifact_uri=None if model is None else model.uri,
        version=None if registered is None else int(registered.metrics["registered_version"]),
        promotion=dict((promotion or {}).get("aliases") or {}),
    )


def list_candidates(
    app: Any, *, pipeline: str | None = None, refused: bool = False, limit: int = 20
) -> list[Candidate]:
    """The candidates of the latest runs, newest first (``refused``: only those)."""
    found: list[Candidate] = []
    for run in app.metadata.search_runs(
        pipeline=pipeline, status="refused" if refused else None, limit=limit
    ):
        candidate = run_candidate(app, run.id)
        if candidate is not None:
            found.append(candidate)
    return found


def _read(app: Any, read_output: Any, record: Any) -> Any:
    """A stored step output, or ``None`` when it cannot be read back (kept in memory)."""
    from conveyor.errors import ConveyorError

    if record is None:
        return None
    try:
        return read_output(app, record)
    except ConveyorError:
        return None
