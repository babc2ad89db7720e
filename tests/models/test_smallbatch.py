"""The small-batch path gives the polars path's matrix, or its exact error, for any input."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.models import FeatureSpec, PredictionInputError, Signature
from conveyor.models.inference import Predictor

SIGNATURE = Signature(
    features=[
        FeatureSpec(name="x", dtype="float64", nullable=False),
        FeatureSpec(name="y", dtype="float32", nullable=True),
        FeatureSpec(name="n", dtype="int64", nullable=False),
        FeatureSpec(name="flag", dtype="bool", nullable=True),
        FeatureSpec(
            name="plan", dtype="category", categories=("basic", "pro", "team"), nullable=True
        ),
        FeatureSpec(name="region", dtype="string", categories=("eu", "us"), nullable=False),
        FeatureSpec(name="code", dtype="int64", categories=("0", "1", "5", "true"), nullable=True),
    ]
)
PREDICTOR = Predictor(SIGNATURE)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(1 << 64), max_value=1 << 64),
    st.integers(min_value=-3, max_value=6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, -2.5, math.inf, -math.inf, math.nan]),
    st.sampled_from(["basic", "pro", "team", "eu", "us", "0", "1", "5", "true", "zz", ""]),
)


def _column(length: int) -> st.SearchStrategy:
    homogeneous = st.sampled_from(
        [
            st.none(),
            st.booleans(),
            st.integers(-5, 5),
            st.floats(allow_nan=True),
            st.sampled_from(["basic", "pro", "eu", "us", "1", "zz"]),
        ]
    ).flatmap(lambda s: st.lists(st.one_of(s, st.none()), min_size=length, max_size=length))
    arrays = st.sampled_from(
        ["float64", "float32", "float16", "int32", "uint64", "bool", "int8"]
    ).flatmap(
        lambda dt: st.lists(
            st.integers(-3, 3) | st.sampled_from([math.nan, math.inf, 0.5]),
            min_size=length,
            max_size=length,
        ).map(
            lambda v, dt=dt: (
                np.asarray(v, dtype=np.float64).astype(dt)
                if dt in ("float64", "float32", "float16")
                else np.asarray([0 if isinstance(x, float) else x for x in v]).astype(dt)
            )
        )
    )
    mixed = st.lists(_scalars, min_size=length, max_size=length)
    return st.one_of(homogeneous, homogeneous, mixed, arrays)


def _valid(name: str, length: int) -> st.SearchStrategy:
    """A column that fits feature ``name`` (most draws are close to valid)."""
    finite = st.floats(allow_nan=False, allow_infinity=False)
    values = {
        "x": st.one_of(
            st.lists(finite, min_size=length, max_size=length),
            st.lists(st.integers(-9, 9), min_size=length, max_size=length),
        ),
        "y": st.lists(
            st.one_of(finite, st.none(), st.just(math.nan)), min_size=length, max_size=length
        ),
        "n": st.lists(st.integers(-(1 << 40), 1 << 40), min_size=length, max_size=length),
        "flag": st.lists(st.one_of(st.booleans(), st.none()), min_size=length, max_size=length),
        "plan": st.lists(
            st.sampled_from(["basic", "pro", "team", "zz", None]), min_size=length, max_size=length
        ),
        "region": st.lists(st.sampled_from(["eu", "us", "zz"]), min_size=length, max_size=length),
        "code": st.one_of(
            st.lists(st.one_of(st.integers(-3, 6), st.none()), min_size=length, max_size=length),
            st.lists(
                st.sampled_from(["0", "5", "true", "x", None]), min_size=length, max_size=length
            ),
            st.lists(st.booleans(), min_size=length, max_size=length),
        ),
    }[name]
    return values


@st.composite
def _inputs(draw: st.DrawFn) -> dict:
    length = draw(st.integers(1, 4))
    columns = {}
    for name in (*SIGNATURE.names, "extra"):
        choice = draw(st.integers(0, 9))
        if choice == 0 or (name == "extra" and choice < 7):
            continue  # the column is absent
        columns[name] = draw(
            _valid(name, length) if choice < 8 and name != "extra" else _column(length)
        )
    if columns and draw(st.integers(0, 20)) == 0:  # now and then a ragged column
        name = next(iter(columns))
        columns[name] = list(columns[name])[:-1] or [None, None]
    return columns


def _polars_result(columns: dict, predictor: Predictor = PREDICTOR) -> tuple:
    try:
        frame = pl.DataFrame([pl.Series(name, values) for name, values in columns.items()])
    except Exception:  # what the server's codec refuses before validation
        return ("unbuildable",)
    try:
        return ("matrix", predictor.matrix(frame))
    except PredictionInputError as exc:
        return (
            "error",
            exc.message,
            exc.hint,
            [(f.check, f.subject, f.details) for f in exc.findings],
        )


def _small_result(columns: dict, predictor: Predictor = PREDICTOR) -> tuple | None:
    try:
        x = predictor.small_matrix(columns)
    except PredictionInputError as exc:
        return (
            "error",
            exc.message,
            exc.hint,
            [(f.check, f.subject, f.details) for f in exc.findings],
        )
    return None if x is None else ("matrix", x)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_inputs())
def test_both_paths_give_equal_matrices_or_equal_errors(columns):
    small = _small_result(columns)
    if small is None:
        return  # the small path declined: the polars path decides alone
    expected = _polars_result(columns)
    assert small[0] == expected[0], (small, expected)
    if small[0] == "matrix":
        assert small[1].dtype == np.float64
        np.testing.assert_array_equal(small[1], expected[1])  # NaN where NaN
    else:
        assert small[1:] == expected[1:]


#: no categories: one row of finite floats takes the shortest path
PLAIN = Predictor(
    Signature(
        features=[
            FeatureSpec(name="x", dtype="float64", nullable=False),
            FeatureSpec(name="y", dtype="float32", nullable=True),
            FeatureSpec(name="n", dtype="int64", nullable=False),
        ]
    )
)
_one_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.none(), st.integers(-3, 3), st.text()
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["x", "y", "n", "extra"]),
        st.one_of(
            st.lists(_one_value, min_size=1, max_size=1),
            st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=2),
        ),
        min_size=1,
    )
)
def test_one_row_of_a_plain_signature_matches_the_polars_path(columns):
    small = _small_result(columns, PLAIN)
    if small is None:
        return
    expected = _polars_result(columns, PLAIN)
    assert small[0] == expected[0], (small, expected)
    if small[0] == "matrix":
        assert small[1].shape == expected[1].shape
        np.testing.assert_array_equal(small[1], expected[1])
    else:
        assert small[1:] == expected[1:]


def test_one_row_of_floats_takes_the_shortest_path():
    x = PLAIN.small_matrix({"x": [1.5], "y": [-2.0], "n": [3.0], "extra": [0.0]})
    assert x is not None and x.shape == (1, 3) and x.dtype == np.float64
    assert x.tolist() == [[1.5, -2.0, 3.0]]
    with pytest.raises(PredictionInputError, match="'x'"):  # NaN leaves it: the full checks
        PLAIN.small_matrix({"x": [math.nan], "y": [0.0], "n": [1.0]})


ROW = {
    "x": [1.5],
    "y": [None],
    "n": [3],
    "flag": [True],
    "plan": ["pro"],
    "region": ["eu"],
    "code": [5],
}


@pytest.mark.parametrize(
    "columns",
    [
        ROW,
        {
            "x": [1.0, 2.0],
            "y": [0.5, math.nan],
            "n": [1, 2],
            "flag": [None, False],
            "plan": ["zz", None],
            "region": ["us", "us"],
            "code": [None, 0],
            "extra": ["a", "b"],
        },
        {
            "x": np.asarray([1.0]),
            "y": np.asarray([2.0], dtype=np.float32),
            "n": np.asarray([4], dtype=np.int32),
            "flag": np.asarray([True]),
            "plan": ["team"],
            "region": ["eu"],
            "code": np.asarray([1], dtype=np.uint8),
        },
    ],
)
def test_plain_requests_take_the_small_path_and_match(columns):
    small = PREDICTOR.small_matrix(columns)
    assert small is not None
    np.testing.assert_array_equal(small, _polars_result(columns)[1])


@pytest.mark.parametrize(
    ("changes", "subjects"),
    [
        ({"x": [math.inf], "n": [None]}, ["n", "x"]),
        ({"x": ["1.5"], "n": [math.nan], "region": [None]}, ["x", "region", "n"]),
        ({"x": None, "region": [1], "y": [math.inf]}, ["x", "region", "y"]),
    ],
)
def test_refusals_name_the_same_fields_in_the_same_order(changes, subjects):
    columns = {k: v for k, v in {**ROW, **changes}.items() if v is not None}
    small, expected = _small_result(columns), _polars_result(columns)
    assert small is not None and small[0] == "error"
    assert [s for _, s, _ in small[3]] == subjects
    assert small[1:] == expected[1:]


@pytest.mark.parametrize(
    "columns",
    [
        {"x": [1, 2.5]},  # polars types the column from its first value
        {"x": [1 << 63]},  # beyond int64: polars picks UInt64
        {"x": np.asarray([1.0], dtype=np.float16)},
        {**ROW, "code": [1.5]},  # a float as category string: polars formats it
        {"x": [1.0], "n": [1, 2]},  # ragged
        {},  # no rows
    ],
)
def test_input_whose_polars_type_is_uncertain_is_left_to_polars(columns):
    assert PREDICTOR.small_matrix(columns) is None
