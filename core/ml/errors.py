"""Errors of the ML components: typed, raised before LightGBM ever sees bad data."""

from __future__ import annotations

from conveyor.errors import ValidationError


class DegenerateDataError(ValidationError):
    """The data cannot train or evaluate a model: no rows, one class, constant or
    all-null features, duplicate keys, missing/NaN/infinite labels, an empty split."""


class PredictionInputError(ValidationError):
    """A table handed to ``predict`` does not match the model's signature."""


class ModelLoadError(ValidationError):
    """A model text or its signature cannot be loaded."""
