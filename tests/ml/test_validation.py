"""Profile inference and the checks of a new batch against it."""

from __future__ import annotations

import json

import polars as pl
import pytest

from conveyor.checks import Severity
from conveyor.errors import ValidationError
from conveyor.ml.data import Shift, generate
from conveyor.ml.profile import DataProfile, infer_profile
from conveyor.ml.validation import (
    CheckConfig,
    blocking,
    check_batch,
    ensure_valid,
    finding_from_dict,
    finding_to_dict,
    format_report,
)


@pytest.fixture(scope="module")
def reference():
    return generate(5000, seed=1)


@pytest.fixture(scope="module")
def profile(reference):
    return infer_profile(reference, label="label")


def checks(findings, severity=None):
    return {f.check for f in findings if severity is None or f.severity is severity}


def test_profile_records_schema_and_statistics(profile, reference):
    f00 = profile.column("f00")
    assert f00.dtype == "Float64" and f00.kind == "numeric" and not f00.nullable
    assert f00.numeric.min == pytest.approx(reference["f00"].min())
    assert f00.numeric.max == pytest.approx(reference["f00"].max())
    assert f00.numeric.quantiles["0.5"] == pytest.approx(reference["f00"].median())
    assert f00.numeric.std == pytest.approx(reference["f00"].std())
    f03 = profile.column("f03")
    assert f03.nullable and f03.null_rate == pytest.approx(reference["f03"].null_count() / 5000)
    region = profile.column("region")
    assert region.kind == "categorical"
    assert sum(region.categorical.frequencies.values()) == pytest.approx(1.0)
    assert profile.row_count == 5000 and profile.label_kind == "classification"
    assert profile.label_distribution["1"] == pytest.approx(reference["label"].mean())


def test_profile_json_round_trip_is_strict(profile):
    text = profile.to_json()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert DataProfile.from_json(text) == profile


def test_profile_with_nan_and_inf_stays_json():
    frame = pl.DataFrame(
        {"x": [1.0, float("nan"), float("inf"), 3.0], "y": [None] * 4},
        schema={"x": pl.Float64, "y": pl.Float64},
    )
    p = infer_profile(frame)
    x = p.column("x")
    assert (x.nan_rate, x.inf_count, x.numeric.max) == (0.25, 1, 3.0)
    assert p.column("y").numeric.mean is None
    assert DataProfile.from_json(p.to_json()) == p


def test_a_fresh_sample_of_the_same_world_passes(profile):
    findings = check_batch(profile, generate(3000, seed=2))
    assert not blocking(findings), format_report(findings)


def test_schema_problems_are_named(profile):
    batch = (
        generate(3000, seed=2)
        .rename({"f05": "f_05"})
        .drop("f06")
        .with_columns(
            pl.col("f02").cast(pl.String),
            pl.lit(1).alias("brand_new"),
            pl.col("f10").cast(pl.Float32),
        )
    )
    findings = check_batch(profile, batch)
    by_check = {(f.check, f.subject): f for f in findings}
    assert by_check[("schema.renamed_column", "f05")].details["renamed_to"] == "f_05"
    assert by_check[("schema.missing_column", "f06")].severity is Severity.ERROR
    assert by_check[("schema.type_changed", "f02")].severity is Severity.ERROR
    assert by_check[("schema.type_changed", "f10")].severity is Severity.WARNING  # width only
    assert by_check[("schema.extra_column", "brand_new")].severity is Severity.WARNING
    strict = check_batch(profile, batch, CheckConfig(allow_extra_columns=False))
    assert any(f.check == "schema.extra_column" and f.blocking for f in strict)


def test_null_jump_inf_and_all_null(profile):
    batch = generate(3000, seed=2).with_columns(
        pl.when(pl.int_range(pl.len()) % 5 == 0).then(None).otherwise(pl.col("f00")).alias("f00"),
        pl.lit(None, pl.Float64).alias("f01"),
        pl.when(pl.int_range(pl.len()) == 0)
        .then(float("inf"))
        .otherwise(pl.col("f02"))
        .alias("f02"),
        pl.when(pl.int_range(pl.len()) == 0)
        .then(float("nan"))
        .otherwise(pl.col("f04"))
        .alias("f04"),
    )
    findings = check_batch(profile, batch)
    errors = {(f.check, f.subject) for f in blocking(findings)}
    assert ("nulls.rate_increase", "f00") in errors
    assert ("nulls.rate_increase", "f01") in errors
    assert ("values.infinite", "f02") in errors
    f04 = [f for f in findings if f.subject == "f04" and f.check == "nulls.rate_increase"]
    assert f04 and f04[0].severity is Severity.WARNING  # one NaN in a column that had none


def test_out_of_range_and_unseen_categories(profile):
    shifted = generate(
        3000, seed=2, shift=Shift(features=("f01", "region"), magnitude=4.0, unseen_rate=0.3)
    )
    findings = check_batch(profile, shifted)
    errors = {(f.check, f.subject) for f in blocking(findings)}
    assert ("range.out_of_range", "f01") in errors
    assert ("categories.unseen", "region") in errors
    unseen = next(f for f in findings if f.check == "categories.unseen")
    assert "arctic" in unseen.message and unseen.details["share"] > 0.2
    relaxed = check_batch(
        profile,
        shifted,
        CheckConfig(severity={"range.out_of_range": "warning"}, max_unseen_categories=0.5),
    )
    assert ("range.out_of_range", "f01") not in {(f.check, f.subject) for f in blocking(relaxed)}
    assert not any(f.check == "categories.unseen" and f.blocking for f in relaxed)


def test_rows_and_label_checks(profile):
    assert "rows.empty" in checks(check_batch(profile, generate(0)), Severity.ERROR)
    assert "rows.count" in checks(check_batch(profile, generate(100, seed=3)), Severity.WARNING)
    positives = generate(3000, seed=2).with_columns(pl.lit(1, pl.Int64).alias("label"))
    assert "label.distribution_shift" in checks(check_batch(profile, positives), Severity.ERROR)
    odd = generate(3000, seed=2).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(2).otherwise(pl.col("label")).alias("label")
    )
    assert "label.unseen_class" in checks(check_batch(profile, odd), Severity.ERROR)
    missing = generate(3000, seed=2).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise(pl.col("label")).alias("label")
    )
    assert "label.missing" in checks(check_batch(profile, missing), Severity.ERROR)


def test_ignore_skips_columns(profile):
    batch = generate(3000, seed=2).drop("entity_id")
    assert "schema.missing_column" in checks(check_batch(profile, batch))
    assert "schema.missing_column" not in checks(
        check_batch(profile, batch, CheckConfig(ignore=["entity_id"]))
    )


def test_report_and_ensure_valid(profile):
    batch = generate(3000, seed=2).drop("f06")
    findings = check_batch(profile, batch)
    report = format_report(findings)
    assert report.startswith("Data validation: FAILED (1 error(s)")
    assert "schema.missing_column" in report and "'f06'" in report
    with pytest.raises(ValidationError) as info:
        ensure_valid(findings)
    assert info.value.findings and "f06" in str(info.value)
    assert info.value.hint
    ensure_valid(check_batch(profile, generate(3000, seed=2)))  # no error
    assert [
        finding_from_dict(json.loads(json.dumps(finding_to_dict(f)))) for f in findings
    ] == findings
