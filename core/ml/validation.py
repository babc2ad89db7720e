"""Check a new batch against a reference :class:`~conveyor.ml.profile.DataProfile`.

Every check yields :class:`~conveyor.checks.Finding` values; ``error`` findings
block the run.  The rules and their default thresholds (all in
:class:`CheckConfig`) are described in ``docs/ml.md``:

=============================  =========================================================
check                          finding
=============================  =========================================================
``rows.empty``                 the batch has no rows (error)
``rows.count``                 row count outside ``[min_row_ratio, max_row_ratio]`` x ref
``schema.missing_column``      a reference column is absent (error)
``schema.renamed_column``      a missing column and an extra one look like a rename (error)
``schema.extra_column``        a column the reference did not have (warning)
``schema.type_changed``        dtype changed: across kinds error, width/int<->float warning
``nulls.rate_increase``        missing share (null + NaN) grew by more than allowed (error)
``values.infinite``            +-inf in a float column (error)
``range.out_of_range``         values outside the reference [min, max] (+tolerance)
``categories.unseen``          categories the reference never had
``label.missing``              null/NaN/inf labels (error)
``label.unseen_class``         a class the reference never had (error)
``label.distribution_shift``   class shares moved by more than ``max_label_shift`` (TV)
=============================  =========================================================
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from attrs import field, frozen

from conveyor.checks import Finding, Severity
from conveyor.convert import to_tuple
from conveyor.errors import ValidationError
from conveyor.ml.profile import (
    BOOLEAN,
    CATEGORICAL,
    NUMERIC,
    ColumnProfile,
    DataProfile,
    column_kind,
)

if TYPE_CHECKING:
    import polars as pl


def _severity(value: Any) -> Severity:
    return value if isinstance(value, Severity) else Severity(value)


def _overrides(value: Mapping[str, Any]) -> dict[str, Severity]:
    return {str(k): _severity(v) for k, v in dict(value).items()}


@frozen(kw_only=True)
class CheckConfig:
    """Thresholds of the batch checks (``docs/ml.md`` explains each).

    Attributes:
        max_null_rate_increase: allowed absolute growth of a column's missing share.
        range_tolerance: values may exceed the reference [min, max] by this
            fraction of the reference range before they count as out of range.
        max_out_of_range: share of out-of-range values above which it is an error
            (fewer out-of-range values are reported as info: extremes of a fresh
            sample routinely land just outside the reference's).
        max_unseen_categories: share of rows with unseen categories above which
            it is an error (a warning below it).
        min_row_ratio, max_row_ratio: row count bounds relative to the reference.
        min_rows: fewer rows is an error.
        max_label_shift: allowed total-variation distance between the class shares.
        rename_similarity: name similarity (0..1) above which a missing column and
            an extra column of the same kind are reported as a rename.
        allow_extra_columns: extra columns are a warning (True) or an error.
        severity: per-check severity overrides, e.g. ``{"range.out_of_range": "warning"}``.
        ignore: columns not checked at all (e.g. ids or time stamps).
    """

    max_null_rate_increase: float = 0.05
    range_tolerance: float = 0.0
    max_out_of_range: float = 0.01
    max_unseen_categories: float = 0.01
    min_row_ratio: float = 0.1
    max_row_ratio: float = 10.0
    min_rows: int = 1
    max_label_shift: float = 0.1
    rename_similarity: float = 0.6
    allow_extra_columns: bool = True
    severity: dict[str, Severity] = field(factory=dict, converter=_overrides)
    ignore: tuple[str, ...] = field(default=(), converter=to_tuple)


class _Collector:
    """Builds findings, applying the configured severity overrides."""

    def __init__(self, config: CheckConfig) -> None:
        self.config = config
        self.findings: list[Finding] = []

    def add(
        self,
        check: str,
        message: str,
        severity: Severity,
        subject: str | None = None,
        **details: Any,
    ) -> None:
        severity = self.config.severity.get(check, severity)
        self.findings.append(
            Finding(
                check=check,
                message=message,
                severity=severity,
                subject=subject,
                details=_jsonable(details),
            )
        )


def _jsonable(value: Any) -> Any:
    """Replace non-finite floats by None, recursively (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _family(dtype: str) -> str:
    """Coarse dtype family used to grade a type change."""
    if dtype.startswith(("Int", "UInt")):
        return "int"
    if dtype.startswith(("Float", "Decimal")):
        return "float"
    if dtype in ("String", "Utf8") or dtype.startswith(("Categorical", "Enum")):
        return "string"
    return dtype.split("(")[0]


def check_batch(
    profile: DataProfile, frame: pl.DataFrame, config: CheckConfig | None = None
) -> list[Finding]:
    """Check ``frame`` against ``profile``; return every finding (empty when clean)."""
    config = config or CheckConfig()
    out = _Collector(config)
    n = frame.height
    if n < max(config.min_rows, 1):
        out.add(
            "rows.empty",
            f"the batch has {n} rows (at least {max(config.min_rows, 1)} needed)",
            Severity.ERROR,
            rows=n,
        )
    elif profile.row_count:
        ratio = n / profile.row_count
        if not config.min_row_ratio <= ratio <= config.max_row_ratio:
            out.add(
                "rows.count",
                f"the batch has {n} rows, {ratio:.2f}x the reference's {profile.row_count}",
                Severity.WARNING,
                rows=n,
                reference_rows=profile.row_count,
                ratio=ratio,
            )

    ref_names = [c for c in profile.names if c not in config.ignore]
    missing = [c for c in ref_names if c not in frame.columns]
    extra = [c for c in frame.columns if c not in profile.names and c not in config.ignore]
    renamed = _renames(profile, frame, missing, extra, config.rename_similarity)
    for old, new in renamed.items():
        out.add(
            "schema.renamed_column",
            f"column {old!r} is missing and {new!r} is new: it looks renamed {old!r} -> {new!r}",
            Severity.ERROR,
            subject=old,
            renamed_to=new,
        )
    for name in missing:
        if name not in renamed:
            out.add(
                "schema.missing_column",
                f"column {name!r} is missing",
                Severity.ERROR,
                subject=name,
                expected_dtype=profile.column(name).dtype,
            )
    for name in extra:
        if name not in renamed.values():
            out.add(
                "schema.extra_column",
                f"column {name!r} was not in the reference",
                Severity.WARNING if config.allow_extra_columns else Severity.ERROR,
                subject=name,
                dtype=str(frame.schema[name]),
            )

    for name in ref_names:
        if name not in frame.columns:
            continue
        ref = profile.column(name)
        series = frame.get_column(name)
        if not _check_type(out, ref, series):
            continue
        if n:
            _check_missing(out, ref, series, config)
            if ref.kind == NUMERIC:
                _check_range(out, ref, series, config)
            elif ref.kind in (CATEGORICAL, BOOLEAN):
                _check_categories(out, ref, series, config)
        if name == profile.label and n:
            _check_label(out, profile, series, config)
    return out.findings


def _renames(
    profile: DataProfile,
    frame: pl.DataFrame,
    missing: Sequence[str],
    extra: Sequence[str],
    threshold: float,
) -> dict[str, str]:
    """Pair missing and extra columns of the same kind whose names are alike."""
    pairs = []
    for old in missing:
        kind = profile.column(old).kind
        for new in extra:
            if column_kind(frame.schema[new]) != kind:
                continue
            score = difflib.SequenceMatcher(None, old.lower(), new.lower()).ratio()
            if score >= threshold:
                pairs.append((score, old, new))
    renamed: dict[str, str] = {}
    for _score, old, new in sorted(pairs, reverse=True):
        if old not in renamed and new not in renamed.values():
            renamed[old] = new
    return renamed


def _check_type(out: _Collector, ref: ColumnProfile, series: pl.Series) -> bool:
    """Report a dtype change; return whether the column can be checked further."""
    dtype = str(series.dtype)
    if dtype == ref.dtype:
        return True
    before, after = _family(ref.dtype), _family(dtype)
    if before == after or {before, after} == {"int", "float"}:
        out.add(
            "schema.type_changed",
            f"column {ref.name!r} changed type {ref.dtype} -> {dtype}",
            Severity.WARNING,
            subject=ref.name,
            expected=ref.dtype,
            observed=dtype,
        )
        return True
    out.add(
        "schema.type_changed",
        f"column {ref.name!r} changed type {ref.dtype} -> {dtype}",
        Severity.ERROR,
        subject=ref.name,
        expected=ref.dtype,
        observed=dtype,
    )
    return False


def _check_missing(
    out: _Collector, ref: ColumnProfile, series: pl.Series, config: CheckConfig
) -> None:
    n = series.len()
    nulls = series.null_count()
    nan = inf = 0
    if series.dtype.is_float():
        nan = int(series.is_nan().sum() or 0)
        inf = int(series.is_infinite().sum() or 0)
    rate = (nulls + nan) / n
    if rate - ref.missing_rate > config.max_null_rate_increase:
        what = "all values are missing" if rate == 1.0 else f"{rate:.1%} missing"
        out.add(
            "nulls.rate_increase",
            f"column {ref.name!r}: {what} (reference "
            f"{ref.missing_rate:.1%}, allowed +{config.max_null_rate_increase:.1%})",
            Severity.ERROR,
            subject=ref.name,
            observed=rate,
            reference=ref.missing_rate,
            nulls=nulls,
            nan=nan,
        )
    elif rate > 0 and not ref.nullable:
        out.add(
            "nulls.rate_increase",
            f"column {ref.name!r} had no missing values and now has {nulls + nan} ({rate:.2%})",
            Severity.WARNING,
            subject=ref.name,
            observed=rate,
            reference=0.0,
            nulls=nulls,
            nan=nan,
        )
    if inf:
        out.add(
            "values.infinite",
            f"column {ref.name!r} has {inf} infinite value(s)",
            Severity.ERROR,
            subject=ref.name,
            count=inf,
        )


def _check_range(
    out: _Collector, ref: ColumnProfile, series: pl.Series, config: CheckConfig
) -> None:
    import polars as pl

    stats = ref.numeric
    if stats is None or stats.min is None or stats.max is None:
        return
    slack = (stats.max - stats.min) * config.range_tolerance
    low, high = stats.min - slack, stats.max + slack
    values = series.cast(pl.Float64)
    finite = values.filter(values.is_finite())
    if finite.len() == 0:
        return
    below = int((finite < low).sum())
    above = int((finite > high).sum())
    bad = below + above
    if not bad:
        return
    share = bad / finite.len()
    seen_low, seen_high = cast(float, finite.min()), cast(float, finite.max())  # non-empty
    severity = Severity.ERROR if share > config.max_out_of_range else Severity.INFO
    out.add(
        "range.out_of_range",
        f"column {ref.name!r}: {bad} value(s) ({share:.2%}) outside "
        f"the reference range [{low:.6g}, {high:.6g}] (observed [{seen_low:.6g}, "
        f"{seen_high:.6g}])",
        severity,
        subject=ref.name,
        share=share,
        below=below,
        above=above,
        reference_min=stats.min,
        reference_max=stats.max,
        observed_min=float(seen_low),
        observed_max=float(seen_high),
    )


def _check_categories(
    out: _Collector, ref: ColumnProfile, series: pl.Series, config: CheckConfig
) -> None:
    import polars as pl

    stats = ref.categorical
    if stats is None or stats.truncated:
        return
    counts = series.drop_nulls().cast(pl.String).value_counts(sort=True)
    unseen = {v: c for v, c in counts.iter_rows() if v not in stats.frequencies}
    if not unseen:
        return
    total = max(int(counts["count"].sum()), 1)
    share = sum(unseen.values()) / total
    severity = Severity.ERROR if share > config.max_unseen_categories else Severity.WARNING
    shown = ", ".join(repr(v) for v in list(unseen)[:10]) + (", ..." if len(unseen) > 10 else "")
    out.add(
        "categories.unseen",
        f"column {ref.name!r}: {len(unseen)} unseen categor"
        f"{'y' if len(unseen) == 1 else 'ies'} ({shown}) in {share:.2%} of rows",
        severity,
        subject=ref.name,
        share=share,
        unseen=dict(list(unseen.items())[:50]),
    )


def _check_label(
    out: _Collector, profile: DataProfile, series: pl.Series, config: CheckConfig
) -> None:
    import polars as pl

    bad = series.null_count()
    if series.dtype.is_float():
        bad += int((~series.is_finite()).sum() or 0)
    if bad:
        out.add(
            "label.missing",
            f"label {series.name!r} has {bad} null, NaN or infinite value(s)",
            Severity.ERROR,
            subject=series.name,
            count=bad,
        )
    if profile.label_kind != "classification" or not profile.label_distribution:
        return
    counts = series.drop_nulls().cast(pl.String).value_counts()
    total = max(int(counts["count"].sum()), 1)
    shares = {v: c / total for v, c in counts.iter_rows()}
    unseen = sorted(set(shares) - set(profile.label_distribution))
    if unseen:
        out.add(
            "label.unseen_class",
            f"label {series.name!r} has class(es) never seen in the reference: {', '.join(unseen)}",
            Severity.ERROR,
            subject=series.name,
            unseen=unseen,
        )
    classes = set(shares) | set(profile.label_distribution)
    tv = 0.5 * sum(
        abs(shares.get(c, 0.0) - profile.label_distribution.get(c, 0.0)) for c in classes
    )
    if tv > config.max_label_shift:
        pretty = ", ".join(
            f"{c}: {profile.label_distribution.get(c, 0.0):.1%} -> {shares.get(c, 0.0):.1%}"
            for c in sorted(classes)
        )
        out.add(
            "label.distribution_shift",
            f"label {series.name!r} distribution moved by "
            f"{tv:.3f} (total variation; allowed {config.max_label_shift}): {pretty}",
            Severity.ERROR,
            subject=series.name,
            distance=tv,
            observed=shares,
            reference=profile.label_distribution,
        )


def blocking(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that block a run (severity ``error``)."""
    return [f for f in findings if f.severity is Severity.ERROR]


def format_report(findings: Sequence[Finding], *, title: str = "Data validation") -> str:
    """A readable report: a summary line, then errors, warnings and infos, one per line."""
    counts = {s: sum(1 for f in findings if f.severity is s) for s in Severity}
    if not findings:
        return f"{title}: passed, no findings"
    verdict = "FAILED" if counts[Severity.ERROR] else "passed"
    lines = [
        f"{title}: {verdict} ({counts[Severity.ERROR]} error(s), "
        f"{counts[Severity.WARNING]} warning(s), {counts[Severity.INFO]} info)"
    ]
    order = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    for f in sorted(findings, key=lambda f: order[f.severity]):
        lines.append(f"  {f.severity.value.upper():<7} {f.check:<26} {f.message}")
    return "\n".join(lines)


def ensure_valid(findings: Sequence[Finding], *, title: str = "Data validation") -> None:
    """Raise :class:`ValidationError` (with the report and the findings) if any finding blocks."""
    if blocking(findings):
        raise ValidationError(
            format_report(findings, title=title),
            hint="fix the data, or relax the check in the validation config "
            "(thresholds, severity overrides, ignore)",
            findings=findings,
        )


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    """A JSON-able dict of a finding."""
    return {
        "check": finding.check,
        "message": finding.message,
        "severity": finding.severity.value,
        "subject": finding.subject,
        "details": _jsonable(finding.details),
    }


def finding_from_dict(data: Mapping[str, Any]) -> Finding:
    """Rebuild a finding from :func:`finding_to_dict` output."""
    return Finding(
        check=data["check"],
        message=data["message"],
        severity=Severity(data["severity"]),
        subject=data.get("subject"),
        details=dict(data.get("details") or {}),
    )
