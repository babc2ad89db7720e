"""Conveyor's error hierarchy.

Every error a user can cause is a :class:`ConveyorError` whose message names the
problem and whose ``hint`` names the fix.  The CLI prints both on one line each,
without a traceback; anything that is not a ``ConveyorError`` is a bug.
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Base class of every error a user can cause and fix.

    Attributes:
        message: what is wrong.
        hint: how to fix it, or ``None``.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\nHint: {self.hint}"


class ConfigError(ConveyorError):
    """The configuration is invalid: names the file, the key and what is allowed."""


class PluginLoadError(ConveyorError):
    """A plugin could not be imported or its hooks do not match any hook spec."""


class PluginConflictError(ConveyorError):
    """Two plugins claim the same entry-point name, backend name, URL scheme or command."""


class UnknownBackendError(ConveyorError):
    """Config names a backend that no loaded plugin provides."""


class NotFoundError(ConveyorError, KeyError):
    """A named thing (artifact, run, model version, ...) does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return ConveyorError.__str__(self)


class AlreadyExistsError(ConveyorError):
    """Something that must be unique already exists."""


class IntegrityError(ConveyorError):
    """Stored bytes do not match the SHA-256 recorded when they were written."""


class ConfinementError(ConveyorError, ValueError):
    """A key or path would resolve outside the store it belongs to."""


class ValidationError(ConveyorError):
    """Data, a model or a request failed validation; ``findings`` says why."""

    def __init__(self, message: str, *, hint: str | None = None, findings=()) -> None:
        super().__init__(message, hint=hint)
        self.findings = tuple(findings)
