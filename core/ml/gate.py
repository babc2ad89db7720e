"""The model validator -- the gate.  Its :class:`GateVerdict` is the "blessing".

A candidate passes when all of these hold (``docs/ml.md`` has the details):

1. **Targets.**  Every absolute threshold is met on the holdout
   (``minimums`` for metrics where higher is better, ``maximums`` otherwise).
2. **Not worse than production.**  When a production model exists, both models
   score the same holdout and a seeded paired bootstrap (rows resampled with
   replacement, the same resample for both models) gives the distribution of
   ``candidate - production`` on ``metric`` (oriented so positive = candidate
   better).  Its one-sided lower bound at ``confidence`` must be ``>= -margin``.
3. **Infra.**  The candidate's stored text is loaded in a child process by the
   same loader serving uses, which predicts a sample; the child must exit
   cleanly and reproduce the in-process predictions.
4. **Extra checks.**  No blocking finding from plugin ``check_model`` hooks
   (passed in as ``extra_findings``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attrs import field, frozen, validators

from conveyor.checks import Finding, Severity
from conveyor.convert import to_tuple
from conveyor.errors import ConveyorError, ValidationError
from conveyor.ml.bootstrap import bootstrap_metric, paired_difference
from conveyor.ml.evaluate import HIGHER_IS_BETTER, compute_metrics
from conveyor.ml.infra import PendingInfraCheck, start_infra_check
from conveyor.ml.validation import _jsonable, finding_from_dict, finding_to_dict, format_report
from conveyor.models.model import TrainedModel

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from conveyor.models.registered import PendingLoad


@frozen(kw_only=True)
class GateConfig:
    """The gate's rule.

    Attributes:
        metric: the metric compared with the production model.
        minimums: metric -> lowest acceptable value (higher-is-better metrics).
        maximums: metric -> highest acceptable value (lower-is-better metrics).
        margin: how much worse than production (in ``metric`` units) is tolerated.
        confidence: level of the one-sided bootstrap lower bound.
        n_bootstrap: bootstrap resamples.
        seed: bootstrap seed (the verdict is reproducible).
        bootstrap_rows: holdouts larger than this are bootstrapped m-out-of-n: a
            seeded subsample of this many rows is resampled and the spread of its
            differences is scaled by sqrt(m / n) around the full-holdout difference.
        infra_check: load and predict in a child process.
        infra_sample_rows: rows of the holdout sent to the child.
        infra_timeout: seconds the child may take.
        infra_tolerance: allowed absolute difference between child and in-process
            predictions (0: bit-identical).
        incomparable: severity when production cannot score the holdout (schema
            changed): ``error`` blocks, ``warning`` skips the comparison.
    """

    metric: str = "auc"
    minimums: dict[str, float] = field(factory=lambda: {"auc": 0.6})
    maximums: dict[str, float] = field(factory=dict)
    margin: float = field(default=0.005, validator=validators.ge(0.0))
    confidence: float = field(default=0.95, validator=[validators.gt(0.5), validators.lt(1.0)])
    n_bootstrap: int = field(default=1000, validator=validators.ge(10))
    seed: int = 0
    bootstrap_rows: int = field(default=20_000, validator=validators.ge(100))
    infra_check: bool = True
    infra_sample_rows: int = field(default=256, validator=validators.ge(1))
    infra_timeout: float = 120.0
    infra_tolerance: float = 0.0
    incomparable: Severity = field(default=Severity.ERROR, converter=Severity)

    def __attrs_post_init__(self) -> None:
        for name in (self.metric, *self.minimums, *self.maximums):
            if name not in HIGHER_IS_BETTER:
                raise ConveyorError(
                    f"the gate does not know metric {name!r}",
                    hint=f"use one of {', '.join(HIGHER_IS_BETTER)}",
                )

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, section: str = "gate", where: str = "parameters"
    ) -> GateConfig:
        """Build from a config table, with ``$.path``-precise ConfigErrors."""
        from conveyor.config import structure

        return structure(cls, data, section=section, where=where)


@frozen(kw_only=True)
class GateVerdict:
    """The gate's decision: the "blessing" the registry requires for production.

    Attributes:
        passed: True when the candidate may be promoted.
        findings: every finding; the ``error`` ones are why it did not pass.
        evidence: JSON-able facts behind the decision (metrics, thresholds,
            bootstrap comparison, infra check).
    """

    passed: bool
    findings: tuple[Finding, ...] = field(default=(), converter=to_tuple)
    evidence: dict[str, Any] = field(factory=dict)

    @property
    def reasons(self) -> list[str]:
        """Messages of the blocking findings."""
        return [f.message for f in self.findings if f.blocking]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "findings": [finding_to_dict(f) for f in self.findings],
            "evidence": _jsonable(self.evidence),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateVerdict:
        return cls(
            passed=bool(data["passed"]),
            findings=[finding_from_dict(f) for f in data.get("findings", ())],
            evidence=dict(data.get("evidence") or {}),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> GateVerdict:
        return cls.from_dict(json.loads(text))

    def report(self) -> str:
        """A readable summary: verdict, the comparison, then every finding."""
        lines = [
            format_report(self.findings, title="Model gate").replace(
                "Model gate: passed", "Model gate: PASSED", 1
            )
        ]
        if not self.findings:
            lines = ["Model gate: PASSED"]
        cmp = self.evidence.get("comparison")
        if cmp:
            lines.append(
                f"  vs production: {cmp['metric']} {cmp['candidate']:.5f} vs "
                f"{cmp['incumbent']:.5f}, difference {cmp['difference']:+.5f}, "
                f"{cmp['confidence']:.0%} lower bound {cmp['lower_bound']:+.5f} "
                f"(must be >= {-cmp['margin']:+.5f})"
            )
        return "\n".join(lines)

    def raise_if_refused(self) -> None:
        """Raise :class:`ValidationError` with the report when the gate refused."""
        if not self.passed:
            raise ValidationError(
                self.report(),
                hint="the candidate was not promoted; see the gate's findings",
                findings=self.findings,
            )


def validate_model(
    candidate: TrainedModel,
    holdout: pl.DataFrame,
    *,
    incumbent: TrainedModel | PendingLoad | None = None,
    config: GateConfig | None = None,
    extra_findings: Sequence[Finding] = (),
    candidate_predictions: Any = None,
    incumbent_predictions: Any = None,
    infra: PendingInfraCheck | None = None,
) -> GateVerdict:
    """Decide whether ``candidate`` may replace ``incumbent`` (production) -- the gate.

    ``candidate_predictions`` (the candidate's predictions of ``holdout``, e.g. from
    the evaluation step) saves scoring the holdout twice; they are re-checked
    against the child process's predictions of the infra sample.
    ``incumbent_predictions`` does the same for production's.  ``infra``: the
    candidate's infra check, started earlier by the caller
    (:func:`start_infra_check` on ``holdout.head(config.infra_sample_rows)``);
    otherwise it is started here, before the scoring, and runs alongside it.
    ``incumbent`` may be a :class:`~conveyor.models.registered.PendingLoad` whose
    canary child still runs: it is waited for only when production is needed, and
    its child is stopped whatever happens.
    """
    import numpy as np
    import polars as pl

    from conveyor.models.inference import predict

    config = config or GateConfig()
    findings: list[Finding] = []
    label = candidate.signature.label
    objective = candidate.signature.objective
    evidence: dict[str, Any] = {
        "rule": (
            f"all thresholds met AND (no production model OR the {config.confidence:.0%} "
            f"paired-bootstrap lower bound of candidate - production on "
            f"{config.metric} >= -{config.margin:g}) AND the child-process load "
            "reproduces the predictions AND no blocking plugin finding"
        ),
        "candidate": {"sha256": candidate.sha256},
        "holdout_rows": holdout.height,
    }

    def finding(
        check: str,
        message: str,
        severity: Severity = Severity.ERROR,
        subject: str | None = None,
        **details: Any,
    ) -> None:
        findings.append(
            Finding(
                check=check,
                message=message,
                severity=severity,
                subject=subject,
                details=_jsonable(details),
            )
        )

    if config.infra_check and infra is None:
        infra = start_infra_check(
            candidate,
            holdout.head(config.infra_sample_rows),
            timeout=config.infra_timeout,
            tolerance=config.infra_tolerance,
        )
    try:
        if label not in holdout.columns:
            raise ValidationError(f"the holdout has no label column {label!r}")
        if candidate_predictions is None:
            p_c = predict(candidate, holdout)
        else:
            p_c = np.asarray(candidate_predictions, dtype=np.float64)
            if p_c.shape != (holdout.height,):
                raise ValidationError(
                    f"{p_c.size} candidate predictions for {holdout.height} holdout rows"
                )
        y = holdout.get_column(label).cast(pl.Float64).to_numpy()
        metrics_c = compute_metrics(y, p_c, objective)
    except ConveyorError as exc:
        finding(
            "gate.candidate_unscorable",
            f"the candidate cannot score the holdout: {exc.message}",
            subject="candidate",
        )
        for pending in (infra, incumbent):
            if pending is not None and not isinstance(pending, TrainedModel):
                pending.discard()
        return GateVerdict(passed=False, findings=findings, evidence=evidence)
    evidence["candidate"]["metrics"] = metrics_c

    # 1. absolute thresholds
    thresholds = []
    for bounds, op in ((config.minimums, ">="), (config.maximums, "<=")):
        for metric, limit in bounds.items():
            value = metrics_c.get(metric)
            ok = value is not None and (value >= limit if op == ">=" else value <= limit)
            thresholds.append(
                {"metric": metric, "op": op, "limit": limit, "value": value, "passed": ok}
            )
            if not ok:
                shown = "undefined" if value is None else f"{value:.5f}"
                finding(
                    "gate.threshold",
                    f"{metric} on the holdout is {shown}; the target is {op} {limit:g}",
                    subject=metric,
                    value=value,
                    limit=limit,
                    op=op,
                )
    evidence["thresholds"] = thresholds

    # 2. not worse than production, with a paired bootstrap bound
    evidence["comparison"] = None
    if incumbent is not None:
        try:
            evidence["comparison"] = _compare(
                candidate,
                incumbent,
                holdout,
                y,
                p_c,
                metrics_c,
                config,
                finding,
                incumbent_predictions,
            )
        finally:
            if not isinstance(incumbent, TrainedModel):
                incumbent.discard()

    # 3. infra: load the stored text in a child process and predict a sample
    evidence["infra"] = None
    if config.infra_check and infra is not None:
        result = infra.result(p_c[: infra.sample.height])
        evidence["infra"] = result.evidence
        findings.extend(result.findings)

    # 4. plugin checks
    findings.extend(extra_findings)
    passed = not any(f.blocking for f in findings)
    return GateVerdict(passed=passed, findings=findings, evidence=_jsonable(evidence))


def _compare(
    candidate: TrainedModel,
    incumbent: TrainedModel | PendingLoad,
    holdout: pl.DataFrame,
    y: np.ndarray,
    p_c: np.ndarray,
    metrics_c: dict[str, float | None],
    config: GateConfig,
    finding: Any,
    p_i: Any = None,
) -> dict[str, Any] | None:
    """Score the incumbent on the same holdout and bound the difference by bootstrap.

    A pending incumbent (its canary child still running) is waited for only once the
    candidate's half of the bootstrap is done: that half needs nothing of production's.
    """
    import numpy as np

    from conveyor.models.inference import predict

    metric = config.metric
    objective = candidate.signature.objective
    if not incumbent.signature.objective and not isinstance(incumbent, TrainedModel):
        incumbent = incumbent.result()  # an old registration: the text names the objective
    if incumbent.signature.objective != objective:
        finding(
            "gate.incomparable",
            "production has a different objective "
            f"({incumbent.signature.objective}); the models cannot be compared",
            config.incomparable,
            "production",
        )
        return None
    started = time.perf_counter()
    n, m = y.size, config.bootstrap_rows
    # m-out-of-n bootstrap of a seeded subsample, rescaled to the full holdout below
    sub = np.sort(np.random.default_rng(config.seed).choice(n, m, replace=False)) if n > m else None
    seed = config.seed if sub is None else config.seed + 1
    y_b = y if sub is None else y[sub]
    c_b = p_c if sub is None else p_c[sub]
    boot_c = bootstrap_metric(y_b, c_b, metric=metric, n_bootstrap=config.n_bootstrap, seed=seed)
    incumbent = incumbent if isinstance(incumbent, TrainedModel) else incumbent.result()
    try:
        if p_i is None:
            p_i = predict(incumbent, holdout)
        else:
            p_i = np.asarray(p_i, dtype=np.float64)
            if p_i.shape != (holdout.height,):
                raise ValidationError(
                    f"{p_i.size} production predictions for {holdout.height} holdout rows"
                )
    except ConveyorError as exc:
        finding(
            "gate.incomparable",
            f"the production model cannot score this holdout "
            f"({exc.message}); the models cannot be compared",
            config.incomparable,
            "production",
        )
        return None
    metrics_i = compute_metrics(y, p_i, objective)
    value_c, value_i = metrics_c.get(metric), metrics_i.get(metric)
    if value_c is None or value_i is None:
        finding(
            "gate.incomparable",
            f"{metric} is undefined on this holdout (one class?)",
            config.incomparable,
            metric,
        )
        return None
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    difference = sign * (value_c - value_i)
    i_b = p_i if sub is None else p_i[sub]
    boot_i = bootstrap_metric(y_b, i_b, metric=metric, n_bootstrap=config.n_bootstrap, seed=seed)
    diffs = paired_difference(boot_c, boot_i, metric)
    if sub is not None:
        sub_c = compute_metrics(y_b, c_b, objective)[metric]
        sub_i = compute_metrics(y_b, i_b, objective)[metric]
        if sub_c is None or sub_i is None:
            diffs = diffs[:0]
        else:
            diffs = difference + (diffs - sign * (sub_c - sub_i)) * np.sqrt(m / n)
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        finding(
            "gate.incomparable",
            f"the bootstrap of {metric} is undefined on this holdout",
            config.incomparable,
            metric,
        )
        return None
    alpha = 1.0 - config.confidence
    lower = float(np.quantile(diffs, alpha))
    upper = float(np.quantile(diffs, 1.0 - alpha))
    ok = lower >= -config.margin
    comparison = {
        "metric": metric,
        "incumbent_sha256": incumbent.sha256,
        "candidate": metrics_c[metric],
        "incumbent": metrics_i[metric],
        "incumbent_metrics": metrics_i,
        "difference": difference,
        "lower_bound": lower,
        "upper_bound": upper,
        "confidence": config.confidence,
        "margin": config.margin,
        "n_bootstrap": int(diffs.size),
        "seed": config.seed,
        "bootstrap_rows": min(n, m),
        "share_worse_than_margin": float(np.mean(diffs < -config.margin)),
        "seconds": time.perf_counter() - started,
        "passed": ok,
    }
    if not ok:
        finding(
            "gate.worse_than_production",
            f"the candidate's {metric} is {metrics_c[metric]:.5f} vs production's "
            f"{metrics_i[metric]:.5f} on the same holdout (difference {difference:+.5f}); "
            f"the {config.confidence:.0%} lower bound {lower:+.5f} is below the allowed "
            f"-{config.margin:g}",
            subject=metric,
            lower_bound=lower,
            difference=difference,
        )
    return comparison
