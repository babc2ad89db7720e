"""Errors of the ML components: typed, raised before LightGBM ever sees bad data.

:class:`PredictionInputError` and :class:`ModelLoadError` belong to
:mod:`conveyor.models` (loading and predicting); they are importable from here too.
"""

from __future__ import annotations

from conveyor.errors import ValidationError
from conveyor.models.errors import ModelLoadError, PredictionInputError

__all__ = ["DegenerateDataError", "ModelLoadError", "PredictionInputError"]


class DegenerateDataError(ValidationError):
    """The data cannot train or evaluate a model: no rows, one class, constant or
    all-null features, duplicate keys, missing/NaN/infinite labels, an empty split."""
