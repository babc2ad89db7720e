"""The canary's child process: parse a LightGBM model text and predict a matrix with it.

:mod:`conveyor.models.canary` runs this file as a script (``python -P
canary_child.py DIR``).  The child does only what must be isolated: LightGBM's text
parser and its trees, called through LightGBM's C API (``lib_lightgbm``, the same
library and the same calls ``Booster(model_str=...)`` and ``Booster.predict`` make).
It imports neither the ``lightgbm`` package nor numpy: the package pulls in SciPy and
narwhals, four fifths of a child's start-up, and the gate and the hot swap wait for
the child.  The library is found by LightGBM's own ``libpath.py``, run on its own.

``DIR`` holds ``model.txt``, ``canary.json`` (``{"sha256": ..., "features": [...],
"rows": n, "columns": k}``) and ``sample.f64`` (the float64 matrix, row-major, in
this machine's byte order, columns in booster order).  The child checks the text's
SHA-256, that it is LightGBM text and that the booster's features are the
signature's, predicts the matrix and prints one JSON object: ``{"sha256": ...,
"rows": n, "predictions": [...]}`` (floats round-trip exactly).  A refused model
exits with status 2 and one line on stderr.

Only the standard library is imported: the parent imports the file names from here.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import os
import sys
import types

MODEL_FILE = "model.txt"
CHECKS_FILE = "canary.json"
SAMPLE_FILE = "sample.f64"

_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_ROW_MAJOR = 1  # C_API_IS_ROW_MAJOR
_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: probabilities / values, as predict()
#: as ``Booster.predict(num_iteration=None)`` on a booster loaded from text, whose
#: ``best_iteration`` is -1: every iteration the text holds
_ALL_ITERATIONS = -1


@ctypes.CFUNCTYPE(None, ctypes.c_char_p)
def _log_to_stderr(message: bytes) -> None:  # a C callback, made once
    sys.stderr.write(message.decode("utf-8", "replace"))


class Refused(Exception):
    """The model is refused: the message is the child's one line of stderr."""


def lightgbm_library() -> ctypes.CDLL:
    """``lib_lightgbm``, found and loaded by the installed package's ``libpath.py``
    (run as a module of its own, so ``lightgbm/__init__.py`` is not imported)."""
    spec = importlib.util.find_spec("lightgbm")
    if spec is None or not spec.submodule_search_locations:
        raise Refused("ModelLoadError: LightGBM is not installed in this interpreter")
    path = os.path.join(next(iter(spec.submodule_search_locations)), "libpath.py")
    try:
        libpath = types.ModuleType("conveyor_canary_lightgbm_libpath")
        libpath.__file__ = path
        with open(path, encoding="utf-8") as fh:
            exec(compile(fh.read(), path, "exec"), libpath.__dict__)
        return libpath._LIB
    except Exception:  # a LightGBM whose libpath.py needs its package: import it
        from lightgbm.libpath import _LIB

        return _LIB


def _call(lib: ctypes.CDLL, status: int, what: str) -> None:
    if status != 0:
        message = lib.LGBM_GetLastError().decode("utf-8", "replace")
        raise Refused(f"ModelLoadError: LightGBM cannot {what}: {message}")


def feature_names(lib: ctypes.CDLL, handle: ctypes.c_void_p) -> list[str]:
    """The booster's feature names, as ``Booster.feature_name()`` reads them."""
    count = ctypes.c_int(0)
    _call(lib, lib.LGBM_BoosterGetNumFeature(handle, ctypes.byref(count)), "count features")
    size, needed, out_len = 255, ctypes.c_size_t(0), ctypes.c_int(0)
    for _ in range(2):  # the second pass with buffers as long as the longest name
        buffers = [ctypes.create_string_buffer(size) for _ in range(count.value)]
        pointers = (ctypes.c_char_p * count.value)(*map(ctypes.addressof, buffers))  # type: ignore[misc]
        _call(
            lib,
            lib.LGBM_BoosterGetFeatureNames(
                handle,
                count,
                ctypes.byref(out_len),
                ctypes.c_size_t(size),
                ctypes.byref(needed),
                pointers,
            ),
            "read feature names",
        )
        if needed.value <= size:
            break
        size = needed.value
    return [b.value.decode("utf-8") for b in buffers]


def predict_sample(directory: str) -> dict[str, object]:
    """Check and parse the model in ``directory`` and predict its sample."""
    with open(os.path.join(directory, MODEL_FILE), encoding="utf-8") as fh:
        text = fh.read()
    with open(os.path.join(directory, CHECKS_FILE), encoding="utf-8") as fh:
        checks = json.load(fh)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if digest != checks["sha256"]:
        raise Refused(
            f"IntegrityError: model text SHA-256 {digest} does not match the recorded "
            f"{checks['sha256']}"
        )
    if not text.startswith("tree\n"):
        raise Refused("ModelLoadError: not a LightGBM text model (it must start with 'tree')")
    rows, columns = int(checks["rows"]), int(checks["columns"])
    with open(os.path.join(directory, SAMPLE_FILE), "rb") as fh:
        sample = fh.read()
    if len(sample) != rows * columns * 8:
        raise Refused(f"the sample holds {len(sample)} bytes, not {rows} x {columns} float64s")
    lib = lightgbm_library()
    lib.LGBM_GetLastError.restype = ctypes.c_char_p
    # the library logs to stdout unless given a callback (the package registers one):
    # its warnings go to stderr, so stdout holds only the answer
    lib.LGBM_RegisterLogCallback(_log_to_stderr)
    handle, iterations = ctypes.c_void_p(), ctypes.c_int(0)
    _call(
        lib,
        lib.LGBM_BoosterLoadModelFromString(
            text.encode("utf-8"), ctypes.byref(iterations), ctypes.byref(handle)
        ),
        "load the model text",
    )
    try:
        names = feature_names(lib, handle)
        if names != list(checks["features"]):
            raise Refused(
                f"ModelLoadError: model features {names} do not match the "
                f"signature's {list(checks['features'])}"
            )
        if columns != len(names):
            raise Refused(f"the sample has {columns} columns for {len(names)} features")
        predictions: list[float] = []
        if rows:
            expected = ctypes.c_int64(0)
            _call(
                lib,
                lib.LGBM_BoosterCalcNumPredict(
                    handle,
                    ctypes.c_int(rows),
                    ctypes.c_int(_PREDICT_NORMAL),
                    ctypes.c_int(0),
                    ctypes.c_int(_ALL_ITERATIONS),
                    ctypes.byref(expected),
                ),
                "size the predictions",
            )
            matrix = (ctypes.c_double * (rows * columns)).from_buffer_copy(sample)
            out = (ctypes.c_double * expected.value)()
            written = ctypes.c_int64(0)
            _call(
                lib,
                lib.LGBM_BoosterPredictForMat(
                    handle,
                    matrix,
                    ctypes.c_int(_FLOAT64),
                    ctypes.c_int32(rows),
                    ctypes.c_int32(columns),
                    ctypes.c_int(_ROW_MAJOR),
                    ctypes.c_int(_PREDICT_NORMAL),
                    ctypes.c_int(0),
                    ctypes.c_int(_ALL_ITERATIONS),
                    b"",
                    ctypes.byref(written),
                    out,
                ),
                "predict the sample",
            )
            predictions = list(out[: written.value])
    finally:
        lib.LGBM_BoosterFree(handle)
    return {"sha256": digest, "rows": rows, "predictions": predictions}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -P canary_child.py DIR", file=sys.stderr)
        return 2
    try:
        answer = predict_sample(args[0])
    except Refused as exc:
        print(exc, file=sys.stderr)
        return 2
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
