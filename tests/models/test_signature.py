"""The one Signature: round trips, legacy stored forms, and a light import."""

from __future__ import annotations

import json
import subprocess
import sys

import attrs
import pytest

from conveyor.errors import ValidationError
from conveyor.interfaces import registry as registry_interface
from conveyor.models import ModelLoadError
from conveyor.models.signature import FeatureSpec, Signature


def _signature() -> Signature:
    return Signature(
        label="label",
        objective="binary",
        features=[
            FeatureSpec(name="age", dtype="float64", nullable=False),
            FeatureSpec(name="n_orders", dtype="int32"),
            FeatureSpec(name="plan", dtype="string", categories=["basic", "pro"]),
            FeatureSpec(name="tier", dtype="category", nullable=False, categories=["a", "b"]),
            FeatureSpec(name="code", dtype="int64", categories=["1", "2", "3"]),
        ],
    )


def test_the_registry_interface_speaks_the_same_signature():
    assert registry_interface.Signature is Signature
    assert registry_interface.FeatureSpec is FeatureSpec


def test_to_dict_from_dict_and_json_round_trip():
    sig = _signature()
    assert Signature.from_dict(sig.to_dict()) == sig
    assert Signature.from_json(sig.to_json()) == sig
    assert json.loads(sig.to_json())["version"] == 2
    assert sig.names == ("age", "n_orders", "plan", "tier", "code")
    assert sig.category_maps == {
        "plan": {"basic": 0, "pro": 1},
        "tier": {"a": 0, "b": 1},
        "code": {"1": 0, "2": 1, "3": 2},
    }
    assert [f.kind for f in sig.features] == [
        "numeric",
        "numeric",
        "categorical",
        "categorical",
        "categorical",
    ]


def test_feature_specs_round_trip_through_attrs_asdict():
    # how the SQLite registry stores a signature's features today
    for spec in _signature().features:
        assert FeatureSpec(**attrs.asdict(spec)) == spec
    stored = [attrs.asdict(f) for f in _signature().features]
    assert Signature(features=[FeatureSpec(**f) for f in stored]).features == _signature().features


def test_the_trainers_old_signature_dict_loads():
    old = {
        "version": 1,
        "label": "label",
        "objective": "binary",
        "features": [
            {
                "name": "age",
                "kind": "numeric",
                "dtype": "Float64",
                "nullable": False,
                "categories": None,
            },
            {
                "name": "n",
                "kind": "numeric",
                "dtype": "Int64",
                "nullable": True,
                "categories": None,
            },
            {
                "name": "flag",
                "kind": "numeric",
                "dtype": "Boolean",
                "nullable": False,
                "categories": None,
            },
            {
                "name": "plan",
                "kind": "categorical",
                "dtype": "String",
                "nullable": True,
                "categories": ["basic", "pro"],
            },
            {
                "name": "tier",
                "kind": "categorical",
                "dtype": "Categorical(ordering='physical')",
                "nullable": False,
                "categories": ["a"],
            },
            {
                "name": "when",
                "kind": "categorical",
                "dtype": "Datetime(time_unit='us', time_zone='UTC')",
                "nullable": True,
                "categories": ["2024-01-01 00:00:00"],
            },
        ],
    }
    sig = Signature.from_dict(old)
    assert [f.dtype for f in sig.features] == [
        "float64",
        "int64",
        "bool",
        "string",
        "category",
        "datetime",
    ]
    assert sig.feature("plan").categories == ("basic", "pro")
    assert sig.label == "label" and sig.objective == "binary"
    assert Signature.from_dict(sig.to_dict()) == sig


def test_the_registrys_old_feature_rows_load():
    rows = [
        {"name": "age", "dtype": "Float64", "nullable": False, "categories": None},
        {"name": "plan", "dtype": "category", "nullable": True, "categories": ["basic", "pro"]},
        {
            "name": "seen",
            "dtype": "Datetime(time_unit='ns', time_zone=None)",
            "nullable": True,
            "categories": None,
        },
    ]
    by_from_dict = Signature.from_dict(rows)
    by_constructor = Signature(features=[FeatureSpec(**r) for r in rows])
    assert by_from_dict == by_constructor
    assert [f.dtype for f in by_from_dict.features] == ["float64", "category", "datetime"]
    assert by_from_dict.label == "" and by_from_dict.objective == ""


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"version": 9, "features": []}, "unsupported signature version"),
        ({"features": [{"name": "x", "dtype": "complex128"}]}, "unknown type 'complex128'"),
        ({"features": [{"name": "x", "dtype": "category"}]}, "'x' has type category but no"),
        (
            {"features": [{"name": "x", "dtype": "float64"}, {"name": "x", "dtype": "int64"}]},
            r"\['x'\] twice",
        ),
        ({"features": [{"dtype": "float64"}]}, "name"),
        ({"label": "y"}, "features"),
    ],
)
def test_a_malformed_signature_is_a_model_load_error(data, match):
    with pytest.raises(ModelLoadError, match=match):
        Signature.from_dict(data)


def test_a_bad_feature_spec_names_the_field():
    with pytest.raises(ValidationError, match="'plan' has type category but no categories"):
        FeatureSpec(name="plan", dtype="category")
    with pytest.raises(ValidationError, match="'plan' lists a category twice"):
        FeatureSpec(name="plan", dtype="string", categories=["a", "a"])


def test_importing_the_signature_loads_nothing_heavy():
    code = (
        "import sys, conveyor.models, conveyor.models.signature, conveyor.models.dtypes, "
        "conveyor.interfaces.registry; "
        "print(sorted({'polars', 'pyarrow', 'lightgbm', 'numpy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
