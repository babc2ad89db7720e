"""The unit of work core hands an executor: one attempt at one step.

A :class:`StepWork` is called where it should run.  Called in the process that
runs the pipeline it uses the run's values in memory; its :meth:`StepWork.to_json`
form is a plain JSON document that :func:`run_task` (``python -m
conveyor.runs.worker``) runs in any other process or host that has the project:
it reads the step's inputs from the artifact store, calls the step, stores the
outputs there and answers with a JSON :class:`StepResult` (keys, hashes,
metrics).  Only JSON travels; nothing is pickled.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from attrs import Factory, asdict, field, frozen

from conveyor.convert import to_tuple
from conveyor.errors import ConveyorError


@frozen(kw_only=True)
class StoredOutput:
    """What one output of a step became.

    Attributes:
        name: the output's name.
        materializer: the materializer that stored it (or would have).
        plugin: the plugin that registered that materializer.
        key: its key in the artifact store; ``None`` when it was kept in memory.
        sha256: the stored bytes' SHA-256 (``None`` when kept in memory).
        size: the stored size in bytes.
        media_type: the stored content type.
        uri: the stored bytes' URI.
    """

    name: str
    materializer: str
    plugin: str = ""
    key: str | None = None
    sha256: str | None = None
    size: int | None = None
    media_type: str | None = None
    uri: str | None = None


@frozen(kw_only=True)
class StepResult:
    """What one attempt at a step hands back: its outputs and metrics.

    ``values`` holds the outputs themselves when the work ran in this process
    (``None`` once it crossed a process boundary: read them from the store).
    """

    outputs: tuple[StoredOutput, ...] = field(default=(), converter=to_tuple)
    metrics: dict[str, float] = Factory(dict)
    values: dict[str, Any] | None = field(default=None, eq=False, repr=False)

    def to_json(self) -> str:
        return json.dumps(
            {"ok": True, "outputs": [asdict(o) for o in self.outputs], "metrics": self.metrics}
        )

    @classmethod
    def from_json(cls, text: str) -> StepResult:
        """The result, or the step's :class:`StepFailure` raised."""
        data = json.loads(text)
        if not data.get("ok"):
            raise StepFailure.from_dict(data["error"])
        return cls(
            outputs=[StoredOutput(**o) for o in data["outputs"]], metrics=data.get("metrics", {})
        )


class StepFailure(Exception):
    """A step's error that came back from another process (its type, message, hint).

    Attributes:
        type_name: the original exception's class name.
        message: its message.
        hint: the fix, for a ConveyorError.
        final: it was a ConveyorError (retrying cannot fix it).
        refused: it was a GateRefused.
        findings: the findings it carried, as dicts.
    """

    def __init__(
        self,
        type_name: str,
        message: str,
        *,
        hint: str | None = None,
        final: bool = False,
        refused: bool = False,
        findings: tuple[dict[str, Any], ...] = (),
    ) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name, self.message, self.hint = type_name, message, hint
        self.final, self.refused, self.findings = final, refused, tuple(findings)

    @classmethod
    def of(cls, exc: BaseException) -> StepFailure:
        from conveyor.pipeline import GateRefused

        if isinstance(exc, StepFailure):
            return exc
        known = exc if isinstance(exc, ConveyorError) else None
        return cls(
            type(exc).__name__,
            str(exc) if known is None else known.message,
            hint=None if known is None else known.hint,
            final=known is not None,
            refused=isinstance(exc, GateRefused),
            findings=tuple(_finding_dict(f) for f in getattr(exc, "findings", ()) or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type_name,
            "message": self.message,
            "hint": self.hint,
            "final": self.final,
            "refused": self.refused,
            "findings": list(self.findings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepFailure:
        return cls(
            data["type"],
            data["message"],
            hint=data.get("hint"),
            final=bool(data.get("final")),
            refused=bool(data.get("refused")),
            findings=tuple(data.get("findings", ())),
        )


def _finding_dict(finding: Any) -> dict[str, Any]:
    return {
        "check": finding.check,
        "message": finding.message,
        "severity": str(getattr(finding.severity, "value", finding.severity)),
        "subject": finding.subject,
        "details": dict(finding.details),
    }


def finding_of(data: Mapping[str, Any]) -> Any:
    """A :class:`~conveyor.checks.Finding` from :func:`_finding_dict`'s form."""
    from conveyor.checks import Finding, Severity

    return Finding(
        check=data["check"],
        message=data["message"],
        severity=Severity(data["severity"]),
        subject=data.get("subject"),
        details=dict(data.get("details") or {}),
    )


class StepWork:
    """One attempt at one step, ready to run.

    Attributes:
        node: the node id in the run's graph.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        timeout_s: how long core waits for it (``None``: no limit).  An executor
            that can stop work (a child process) should stop it after this long.
    """

    def __init__(
        self,
        *,
        node: str,
        attempt: int,
        timeout_s: float | None,
        run_here: Callable[[StepWork], StepResult],
        describe: Callable[[], dict[str, Any]],
    ) -> None:
        self.node = node
        self.attempt = attempt
        self.timeout_s = timeout_s
        self._run_here = run_here
        self._describe = describe
        self._cancelled = threading.Event()

    def __call__(self) -> StepResult:
        """Run the step in this process (values stay in memory)."""
        return self._run_here(self)

    def to_json(self) -> str:
        """The portable form: run it anywhere with :func:`run_task`."""
        return json.dumps(self._describe(), sort_keys=True, default=str)

    def cancel(self) -> None:
        """Core gave up on this attempt: whatever it computes later is not stored."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def __repr__(self) -> str:
        return f"<StepWork {self.node} attempt {self.attempt}>"


def split_outputs(node: str, names: tuple[str, ...], result: Any) -> dict[str, Any]:
    """A step's return value as ``output name -> value``."""
    if len(names) == 1:
        return {names[0]: result}
    if not isinstance(result, tuple) or len(result) != len(names):
        raise ConveyorError(
            f"step {node!r} declares outputs {names} but returned {type(result).__name__}",
            hint=f"return a tuple of {len(names)} values",
        )
    return dict(zip(names, result, strict=True))


def store_outputs(
    app: Any, catalogue: Any, values: Mapping[str, Any], *, prefix: str, persist: bool
) -> tuple[StoredOutput, ...]:
    """Store each output under ``prefix/<name>.<ext>`` (or, not persisting, only name it)."""
    stored = []
    for name, value in values.items():
        if value is None:
            continue  # nothing to store; downstream steps receive None
        materializer = catalogue.for_value(value)
        if not persist:
            stored.append(
                StoredOutput(name=name, materializer=materializer.name, plugin=materializer.plugin)
            )
            continue
        key = f"{prefix}/{name}.{materializer.extension}"
        info = materializer.save(app.artifacts, key, value)
        stored.append(
            StoredOutput(
                name=name,
                materializer=materializer.name,
                plugin=materializer.plugin,
                key=key,
                sha256=info.sha256,
                size=info.size,
                media_type=info.media_type,
                uri=info.uri,
            )
        )
    return tuple(stored)


# -- running the portable form elsewhere ------------------------------------------------

_APPS: dict[tuple[str, str | None, str | None], Any] = {}
_APPS_LOCK = threading.Lock()


def _app_for(task: Mapping[str, Any]) -> Any:
    from conveyor.app import Conveyor

    key = (task["root"], task.get("profile"), task.get("config_file"))
    with _APPS_LOCK:
        if key not in _APPS:
            _APPS[key] = Conveyor.load(
                task.get("config_file"), profile=task.get("profile"), cwd=task["root"]
            )
        return _APPS[key]


def record_to_json(record: Any) -> dict[str, Any]:
    """A step input's record (an ArtifactRecord or an external's dict) as JSON."""
    if isinstance(record, Mapping):
        return {"plain": dict(record)}
    data = asdict(record)
    data["created"] = record.created.isoformat()
    return {"record": data}


def record_from_json(data: Mapping[str, Any]) -> Any:
    from conveyor.interfaces.metadata import ArtifactRecord

    if "plain" in data:
        return dict(data["plain"])
    fields = dict(data["record"])
    fields["created"] = datetime.fromisoformat(fields["created"])
    return ArtifactRecord(**fields)


def run_task(task_json: str) -> str:
    """Run one step from its JSON form (:meth:`StepWork.to_json`); answer in JSON.

    Never raises: a failure is answered as ``{"ok": false, "error": {...}}``, which
    :meth:`StepResult.from_json` raises again as a :class:`StepFailure`.
    """
    try:
        task = json.loads(task_json)
        return _run_task(task).to_json()
    except BaseException as exc:  # reported to core, which decides on retries
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return json.dumps({"ok": False, "error": StepFailure.of(exc).to_dict()})


def _run_task(task: Mapping[str, Any]) -> StepResult:
    from conveyor.backends import import_object
    from conveyor.pipeline import Step, StepContext

    app = _app_for(task)
    step = import_object(task["step"])
    if not isinstance(step, Step):
        raise ConveyorError(
            f"{task['step']} is not a @step",
            hint="steps that run in another process must be module-level @step functions",
        )
    catalogue = app.pm.materializers()
    kwargs: dict[str, Any] = dict(task["params"])
    for arg, ref in task["inputs"].items():
        kwargs[arg] = (
            None
            if ref is None
            else catalogue.named(ref["materializer"], plugin=ref.get("plugin")).load(
                app.artifacts, ref["key"]
            )
        )
    for arg, ext in task["externals"].items():
        kwargs[arg] = import_object(ext["type"])(**ext["fields"]).resolve(app)
    ctx = StepContext(
        app=app,
        run_id=task["run_id"],
        step=task["node"],
        parameters=task["parameters"],
        trigger_event=task.get("trigger_event"),
        inputs={k: record_from_json(v) for k, v in task["records"].items()},
    )
    if step.wants_context:
        kwargs["ctx"] = ctx
    values = split_outputs(task["node"], tuple(task["outputs"]), step.fn(**kwargs))
    outputs = store_outputs(app, catalogue, values, prefix=task["prefix"], persist=True)
    return StepResult(outputs=outputs, metrics=ctx.metrics)


def project_of(app: Any) -> dict[str, Any]:
    """Where another process finds the same project: root, config file and profile."""
    file = app.config.file
    return {
        "root": str(Path(app.root)),
        "profile": app.config.profile,
        "config_file": None if file is None else str(file),
    }
