"""load_registered_model: SHA-256 on every load, LightGBM text only, canary in a child."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pytest

from conveyor.errors import IntegrityError, NotFoundError
from conveyor.models import ModelLoadError, load_registered_model, predict, registered
from conveyor.models.canary import run_canary


@pytest.fixture
def fresh_trust(monkeypatch):
    """Forget which model texts passed a canary in this process."""
    monkeypatch.setattr(registered, "_TRUSTED", set())
    return registered._TRUSTED


def test_load_by_version_name_alias_and_ref(conveyor_app, register, model, split, fresh_trust):
    mv = register(model.model_text, model.signature)
    assert "conveyor.signature" not in mv.params  # the signature is not smuggled
    conveyor_app.registry.set_alias("churn", "champion", mv.version, actor="test")
    expected = predict(model, split.holdout)
    for loaded in (
        load_registered_model(conveyor_app, mv),
        load_registered_model(conveyor_app, "churn", 1),
        load_registered_model(conveyor_app, "churn:1"),
        load_registered_model(conveyor_app, "churn", alias="champion"),
        load_registered_model(conveyor_app, "churn"),
    ):
        assert loaded.sha256 == model.sha256
        assert loaded.signature.names == model.signature.names
        assert loaded.signature.objective == "binary"
        assert np.array_equal(predict(loaded, split.holdout), expected)
    assert fresh_trust == {model.sha256}  # one canary for five loads of the same bytes
    with pytest.raises(NotFoundError, match="alias 'production'"):
        load_registered_model(conveyor_app, "churn", alias="production")


def test_tampered_bytes_are_an_integrity_error(conveyor_app, register, model, fresh_trust):
    mv = register(model.model_text, model.signature)
    blob = Path(conveyor_app.artifacts.root) / "blobs" / mv.sha256
    blob.chmod(0o600)
    blob.write_bytes(model.model_text.replace("leaf_value=", "leaf_value=1", 1).encode())
    with pytest.raises(IntegrityError, match="modified"):
        load_registered_model(conveyor_app, mv)
    # a version whose recorded hash is not its bytes' (e.g. a registry row edited)
    other = attrs.evolve(mv, sha256="0" * 64)
    blob.write_bytes(model.model_text.encode())
    with pytest.raises(IntegrityError):
        load_registered_model(conveyor_app, other)
    assert fresh_trust == set()


def test_only_lightgbm_text_is_loaded(conveyor_app, register, model, fresh_trust):
    pickled = register(b"\x80\x04\x95pickle", model.signature, name="pickled")
    with pytest.raises(ModelLoadError, match="not text|not a LightGBM text model"):
        load_registered_model(conveyor_app, pickled)
    dumped = register('{"name": "tree", "tree_info": []}', model.signature, name="dumped")
    with pytest.raises(ModelLoadError, match="not a LightGBM text model"):
        load_registered_model(conveyor_app, dumped)
    as_json = register(model.model_text, model.signature, name="json", model_format="lightgbm-json")
    with pytest.raises(ModelLoadError, match="'lightgbm-json'; only lightgbm-text"):
        load_registered_model(conveyor_app, as_json)
    foreign = attrs.evolve(as_json, model_format="sklearn-pickle")
    with pytest.raises(ModelLoadError, match="'sklearn-pickle'"):
        load_registered_model(conveyor_app, foreign)
    assert fresh_trust == set()


def _garbled(text: str) -> str:
    # LightGBM's parser aborts the process (SIGABRT) on this: in-process, it would kill
    # the test run
    return "".join(
        line.replace("split_feature=", "split_feature=x9 ")
        for line in text.splitlines(keepends=True)
    )


def test_a_crafted_model_crashes_the_canary_child_not_the_caller(
    conveyor_app, register, model, fresh_trust
):
    mv = register(_garbled(model.model_text), model.signature, name="crafted")
    with pytest.raises(ModelLoadError, match="canary load in a child process") as info:
        load_registered_model(conveyor_app, mv)
    assert "model crafted v1" in info.value.message
    assert (
        "the child was killed by signal" in info.value.message
        or "the child exited with status" in info.value.message
    )
    assert "re-train or re-register" in info.value.hint
    assert fresh_trust == set()  # never trusted, so every load tries the canary again


def test_the_canary_walks_the_trees_without_a_sample(model):
    run = run_canary(model.model_text, model.metadata_json())
    assert run.ok, run.reason
    assert run.sha256 == model.sha256 and len(run.predictions) == 4
    truncated = model.model_text[: len(model.model_text) // 2]
    meta = attrs.evolve(model, model_text=truncated).metadata_json()
    bad = run_canary(truncated, meta)
    assert not bad.ok and bad.returncode != 0
    assert "SHA-256" in bad.reason  # the child checks the hash before parsing


def test_a_registered_model_needs_a_signature(conveyor_app, register, model, fresh_trust):
    mv = register(model.model_text, None, name="unsigned")
    with pytest.raises(ModelLoadError, match="no stored signature"):
        load_registered_model(conveyor_app, mv, canary=False)


def test_a_registry_written_before_the_shared_signature_still_loads(
    conveyor_app, register, model, split, fresh_trust
):
    mv = register(model.model_text, model.signature, name="old")
    legacy = {
        "version": 1,
        "label": "label",
        "objective": "binary",
        "features": [
            {
                "name": f.name,
                "kind": f.kind,
                "nullable": f.nullable,
                "categories": f.categories,
                "dtype": "String" if f.categories is not None else "Float64",
            }
            for f in model.signature.features
        ],
    }
    old = attrs.evolve(
        mv, params={"conveyor.signature": legacy}, signature=attrs.evolve(mv.signature, label="")
    )
    loaded = load_registered_model(conveyor_app, old)
    assert loaded.signature.label == "label"
    assert np.array_equal(predict(loaded, split.holdout), predict(model, split.holdout))


def test_the_canary_child_imports_no_python_package(model, split, tmp_path):
    """The child is what the gate and the hot swap wait for: it calls LightGBM's library
    without the lightgbm package (SciPy, narwhals), numpy, Conveyor, polars or pyarrow."""
    import json
    import subprocess
    import sys

    from conveyor.models import canary_child
    from conveyor.models.canary import write_inputs

    sample = split.holdout.head(16)
    matrix = model.predictor.matrix(sample)
    write_inputs(tmp_path, model.model_text, model.sha256, model.signature.names, matrix)
    # the child as PendingCanary starts it, reporting at exit the modules it loaded
    report = (
        "import atexit, json, runpy, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted({m.split('.')[0] for m, v in "
        "sys.modules.items() if v is not None})), file=sys.stderr))\n"
        f"sys.argv = [{canary_child.__file__!r}, {str(tmp_path)!r}]\n"
        f"runpy.run_path({canary_child.__file__!r}, run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-P", "-c", report], capture_output=True, text=True, check=True
    )
    imported = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert not imported & {
        "lightgbm", "numpy", "scipy", "narwhals", "conveyor", "polars", "pyarrow", "pandas",
        "sklearn", "attrs",
    }  # fmt: skip
    answer = json.loads(done.stdout)
    assert answer["sha256"] == model.sha256
    # bit for bit what Booster.predict gives in process
    assert answer["predictions"] == predict(model, sample).tolist()


def test_a_sample_that_does_not_fit_is_refused_without_a_child(model, split):
    run = run_canary(model.model_text, model.metadata_json(), split.holdout.drop("f03"))
    assert not run.ok and run.returncode == 2
    assert "PredictionInputError" in run.reason and "'f03' is missing" in run.reason
