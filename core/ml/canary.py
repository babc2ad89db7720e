"""Child-process canary: load a model from its stored text and predict a sample.

Run as ``python -m conveyor.ml.canary DIR`` where ``DIR`` holds ``model.txt``,
``model.json`` (signature + SHA-256) and ``sample.arrow`` (Arrow IPC).  It loads
the model exactly as serving does (:meth:`TrainedModel.from_parts`: hash check,
LightGBM text parse, signature check), predicts the sample through
:func:`~conveyor.ml.train.predict` and prints one JSON object on stdout:
``{"sha256": ..., "rows": n, "predictions": [...]}`` (floats round-trip exactly).
A refused model exits with status 2 and the reason on stderr; a crash of the
LightGBM parser kills only this process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SAMPLE_FILE = "sample.arrow"


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m conveyor.ml.canary DIR", file=sys.stderr)
        return 2
    import polars as pl

    from conveyor.errors import ConveyorError
    from conveyor.ml.train import METADATA_FILE, MODEL_FILE, TrainedModel, predict

    directory = Path(args[0])
    try:
        model = TrainedModel.from_parts(
            (directory / MODEL_FILE).read_text(encoding="utf-8"),
            (directory / METADATA_FILE).read_text(encoding="utf-8"))
        sample = pl.read_ipc(directory / SAMPLE_FILE)
        predictions = predict(model, sample)
    except ConveyorError as exc:
        hint = f" (hint: {exc.hint})" if exc.hint else ""
        print(f"{type(exc).__name__}: {exc.message}{hint}", file=sys.stderr)  # one line
        return 2
    json.dump({"sha256": model.sha256, "rows": int(predictions.size),
               "predictions": [float(v) for v in predictions]}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
