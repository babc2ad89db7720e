"""Errors of loading and calling a model (both :class:`~conveyor.errors.ValidationError`)."""

from __future__ import annotations

from conveyor.errors import ValidationError


class PredictionInputError(ValidationError):
    """A table handed to ``predict`` does not match the model's signature; each of
    ``findings`` names one offending field (``subject``)."""


class ModelLoadError(ValidationError):
    """A model text, its format or its signature cannot be loaded."""
