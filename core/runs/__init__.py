"""Run semantics: how Conveyor runs a pipeline, whatever executes its steps.

:func:`run_pipeline` runs a built graph: caching, reuse, retries, timeouts, gate
refusals, recording and events are decided here, and the configured orchestrator
(an executor, :class:`conveyor.interfaces.Orchestrator`) only executes each
step's :class:`StepWork`.  :func:`read_output` and :func:`load_run_output` read
a recorded output back, in any process.
"""

from conveyor.runs.outcome import (
    STEP_OUTCOMES,
    Progress,
    RunResult,
    StepOutcome,
    load_run_output,
    read_output,
)
from conveyor.runs.runner import run_pipeline
from conveyor.runs.work import StepFailure, StepResult, StepWork, StoredOutput, run_task

__all__ = [
    "STEP_OUTCOMES",
    "Progress",
    "RunResult",
    "StepFailure",
    "StepOutcome",
    "StepResult",
    "StepWork",
    "StoredOutput",
    "load_run_output",
    "read_output",
    "run_pipeline",
    "run_task",
]
