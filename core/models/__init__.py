"""Models: the one signature and dtype vocabulary, the trained-model value, loading a
registered version and predicting with the signature enforced.

* :mod:`conveyor.models.dtypes` -- the dtype vocabulary and its polars/Arrow mappings;
* :mod:`conveyor.models.signature` -- :class:`Signature` and :class:`FeatureSpec`;
* :mod:`conveyor.models.model` -- :class:`TrainedModel` (LightGBM text, SHA-256,
  signature), ``save_model``/``load_model``;
* :mod:`conveyor.models.inference` -- ``predict`` and the shared ``feature_matrix``;
* :mod:`conveyor.models.canary` -- parsing a model in a child process first;
* :mod:`conveyor.models.registered` -- ``load_registered_model`` (``start_registered_load``
  without waiting for the canary)/``load_registered_profile``.

Nothing here imports the training steps.  Importing this package, ``dtypes`` or
``signature`` loads no polars, pyarrow or LightGBM; the names below resolve lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DTYPES": "dtypes",
    "FeatureSpec": "signature",
    "Signature": "signature",
    "ModelLoadError": "errors",
    "PredictionInputError": "errors",
    "TrainedModel": "model",
    "save_model": "model",
    "load_model": "model",
    "sha256_text": "model",
    "predict": "inference",
    "feature_matrix": "inference",
    "Predictor": "inference",
    "run_canary": "canary",
    "load_registered_model": "registered",
    "load_registered_profile": "registered",
    "start_registered_load": "registered",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"conveyor.models.{module}"), name)
