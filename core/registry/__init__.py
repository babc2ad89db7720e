"""The model registry's rules, in core: what ``app.registry`` is.

* :class:`ModelRegistry` (:mod:`.service`): the registry API, enforcing every
  rule over a :class:`~conveyor.interfaces.RegistryBackend` (storage only);
* :class:`PromotionPolicy` (:mod:`.policy`): name rules, reserved aliases and
  the ``[promotion]`` section's per-alias rules and evidence;
* :func:`verify_artifact` (:mod:`.artifacts`): artifact confinement and hashes;
* :func:`replay` and :func:`check_audit_log` (:mod:`.audit`): audit replay.

A backend author implements the primitives and runs
:class:`conveyor.testing.registry.ModelRegistryContract`, which exercises these
rules over the backend.
"""

from __future__ import annotations

from conveyor.registry.artifacts import verify_artifact
from conveyor.registry.audit import check_audit_log, check_numbering, replay
from conveyor.registry.policy import (
    DEFAULT_RULES,
    RESERVED_ALIASES,
    RULES,
    PromotionPolicy,
    check_alias,
    check_name,
)
from conveyor.registry.service import ModelRegistry

__all__ = [
    "DEFAULT_RULES",
    "RESERVED_ALIASES",
    "RULES",
    "ModelRegistry",
    "PromotionPolicy",
    "check_alias",
    "check_audit_log",
    "check_name",
    "check_numbering",
    "replay",
    "verify_artifact",
]
