"""The gate's infra check: the candidate's stored text, loaded and run in a child process.

The child is the same loader serving uses (:mod:`conveyor.models.canary`); the
check fails when it times out, crashes, refuses the model, or predicts
differently from the in-process predictions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from conveyor.checks import Finding, Severity
from conveyor.convert import to_tuple
from conveyor.ml.validation import _jsonable

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from conveyor.models.canary import CanaryRun
    from conveyor.models.model import TrainedModel


@frozen(kw_only=True)
class InfraResult:
    """Outcome of the child-process canary.

    Attributes:
        passed: the child loaded the model and reproduced the predictions.
        findings: why not, when it did not.
        evidence: return code, seconds, rows, largest prediction difference.
    """

    passed: bool
    findings: tuple[Finding, ...] = field(default=(), converter=to_tuple)
    evidence: dict[str, Any] = field(factory=dict)


def infra_check(
    model: TrainedModel,
    sample: pl.DataFrame,
    *,
    timeout: float = 120.0,
    tolerance: float = 0.0,
    expected: Any = None,
) -> InfraResult:
    """Load ``model``'s stored text in a child process and predict ``sample`` there.

    The child (:func:`conveyor.models.canary.run_canary`) gets the model text, its
    metadata (signature, SHA-256) and the sample.  The check fails when the child
    times out, crashes, refuses the model, or predicts differently from
    ``expected`` (by default the in-process predictions of ``model``).
    """
    return start_infra_check(model, sample, timeout=timeout, tolerance=tolerance).result(expected)


class PendingInfraCheck:
    """An :func:`infra_check` whose child is running (:func:`start_infra_check`), so
    the gate scores and bootstraps meanwhile; :meth:`result` compares its answer."""

    def __init__(
        self, model: TrainedModel, sample: pl.DataFrame, *, timeout: float, tolerance: float
    ) -> None:
        from conveyor.models.canary import start_canary

        self.model, self.sample, self.tolerance = model, sample, tolerance
        self._run = start_canary(model.model_text, model.metadata_json(), sample, timeout=timeout)

    def result(self, expected: Any = None) -> InfraResult:
        """Wait for the child; ``expected``: the in-process predictions of the sample
        (computed here when not given)."""
        import numpy as np

        from conveyor.models.inference import predict

        if expected is None:
            expected = predict(self.model, self.sample)
        expected = np.asarray(expected, dtype=np.float64)
        return _judge(self._run.result(), expected, self.tolerance)

    def discard(self) -> None:
        """Stop the child without judging it."""
        self._run.discard()


def start_infra_check(
    model: TrainedModel, sample: pl.DataFrame, *, timeout: float = 120.0, tolerance: float = 0.0
) -> PendingInfraCheck:
    """Start :func:`infra_check`'s child process and return without waiting for it."""
    return PendingInfraCheck(model, sample, timeout=timeout, tolerance=tolerance)


def _judge(run: CanaryRun, expected: np.ndarray, tolerance: float) -> InfraResult:
    import numpy as np

    def fail(check: str, message: str, **evidence: Any) -> InfraResult:
        evidence = {"passed": False, **evidence}
        return InfraResult(
            passed=False,
            evidence=evidence,
            findings=[
                Finding(
                    check=check,
                    message=message,
                    severity=Severity.ERROR,
                    subject="candidate",
                    details=_jsonable(evidence),
                )
            ],
        )

    if run.returncode is None:
        return fail("infra.timeout", run.reason, seconds=run.seconds)
    if run.returncode != 0:
        return fail(
            "infra.load_failed",
            f"loading the candidate in a child process failed: {run.reason}",
            returncode=run.returncode,
            seconds=run.seconds,
            stderr=run.stderr,
        )
    if not run.ok:
        return fail(
            "infra.bad_output",
            run.reason,
            returncode=run.returncode,
            seconds=run.seconds,
            stderr=run.stderr,
        )
    got = np.asarray(run.predictions, dtype=np.float64)
    if got.shape != expected.shape:
        return fail(
            "infra.prediction_mismatch",
            f"the child predicted {got.size} rows, expected {expected.size}",
            seconds=run.seconds,
        )
    diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
    if not diff <= tolerance:
        return fail(
            "infra.prediction_mismatch",
            f"the model loaded in a child process "
            f"predicts differently (max difference {diff:.3g}, tolerance "
            f"{tolerance:g}): the stored text is not the model that was evaluated",
            seconds=run.seconds,
            max_abs_diff=diff,
            rows=int(got.size),
        )
    return InfraResult(
        passed=True,
        evidence={
            "passed": True,
            "returncode": 0,
            "seconds": run.seconds,
            "rows": int(got.size),
            "max_abs_diff": diff,
            "sha256": run.sha256,
        },
    )


# --------------------------------------------------------------------------- the gate
