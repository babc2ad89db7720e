"""The canary's child process: parse a LightGBM model text and predict a matrix with it.

:mod:`conveyor.models.canary` runs this file as a script (``python -P
canary_child.py DIR``), so the child imports only numpy and LightGBM: no Conveyor,
polars or pyarrow (the parent validates and encodes the sample with the model's
signature; the child only does what must be isolated, LightGBM's parser and trees).
``DIR`` holds ``model.txt``, ``canary.json`` (``{"sha256": ..., "features": [...]}``)
and ``sample.npy`` (the float64 matrix, columns in booster order).  The child checks
the text's SHA-256, that it is LightGBM text and that the booster's features are the
signature's, predicts the matrix and prints one JSON object: ``{"sha256": ...,
"rows": n, "predictions": [...]}`` (floats round-trip exactly).  A refused model
exits with status 2 and one line on stderr.

Only the standard library is imported at module level: the parent imports the file
names from here.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

MODEL_FILE = "model.txt"
CHECKS_FILE = "canary.json"
SAMPLE_FILE = "sample.npy"
#: packages LightGBM imports if installed, which the child does not need; refusing them
#: cuts the child's start-up several-fold (the gate and the hot swap wait for it)
NOT_NEEDED = (
    "sklearn",
    "pandas",
    "dask",
    "distributed",
    "matplotlib",
    "graphviz",
    "datatable",
    "pyarrow",
    "polars",
)


class Refused(Exception):
    """The model is refused: the message is the child's one line of stderr."""


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
    for name in NOT_NEEDED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    import lightgbm as lgb
    import numpy as np

    try:
        booster = lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as exc:
        raise Refused(f"ModelLoadError: LightGBM cannot load the model text: {exc}") from None
    if booster.feature_name() != list(checks["features"]):
        raise Refused(
            f"ModelLoadError: model features {booster.feature_name()} do not match the "
            f"signature's {list(checks['features'])}"
        )
    matrix = np.load(os.path.join(directory, SAMPLE_FILE), allow_pickle=False)
    predictions = (
        np.asarray(booster.predict(matrix), dtype=np.float64) if matrix.shape[0] else np.empty(0)
    )
    return {
        "sha256": digest,
        "rows": int(predictions.size),
        "predictions": [float(v) for v in predictions],
    }


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
