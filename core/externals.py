"""External inputs of pipeline steps: things outside the pipeline a step reads.

Each is fingerprinted before the step runs and the fingerprint is part of the
step's cache key; :mod:`conveyor.pipeline` re-exports them.
"""

from __future__ import annotations

import abc
import hashlib
import json
from pathlib import Path
from typing import Any

from attrs import frozen

from conveyor.errors import ConveyorError


def canonical_json(value: Any) -> str:
    """``value`` as compact JSON with sorted keys: the form that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


class External(abc.ABC):
    """Something outside the pipeline that a step reads, fingerprinted before it runs.

    Pass one as a step argument: the step receives ``resolve(app)`` and the step's
    cache key includes ``fingerprint(app)``, so a change outside (new data files, a
    new production model) invalidates exactly the steps that read it.
    """

    @abc.abstractmethod
    def fingerprint(self, app: Any) -> str:
        """A hash that changes whenever what ``resolve`` returns would change."""

    @abc.abstractmethod
    def resolve(self, app: Any) -> Any:
        """The value handed to the step."""

    @abc.abstractmethod
    def describe(self, app: Any) -> str:
        """A URI-like description, recorded as the step's input in lineage."""


@frozen
class Files(External):
    """Files matching a glob pattern (relative to the project root), hashed by content."""

    pattern: str

    def paths(self, root: Path) -> list[Path]:
        pattern = Path(self.pattern)
        if pattern.is_absolute():
            return sorted(Path(pattern.anchor).glob(str(pattern.relative_to(pattern.anchor))))
        return sorted(root.glob(self.pattern))

    def fingerprint(self, app: Any) -> str:
        root = app.root
        digest = hashlib.sha256()
        for path in self.paths(root):
            digest.update(path.name.encode() + b"\0")
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()

    def resolve(self, app: Any) -> list[Path]:
        found = self.paths(app.root)
        if not found:
            raise ConveyorError(
                f"no files match {self.pattern!r} under {app.root}",
                hint="check the data path parameter of the pipeline",
            )
        return found

    def describe(self, app: Any) -> str:
        return (
            (app.root / self.pattern).as_uri()
            if not Path(self.pattern).is_absolute()
            else Path(self.pattern).as_uri()
        )


@frozen
class ModelAlias(External):
    """The model version an alias points at now (``None`` when it points nowhere)."""

    model: str
    alias: str = "production"

    def fingerprint(self, app: Any) -> str:
        version = app.registry.resolve(self.model, self.alias)
        return "none" if version is None else f"{version.version}:{version.sha256}"

    def resolve(self, app: Any) -> Any:
        return app.registry.resolve(self.model, self.alias)

    def describe(self, app: Any) -> str:
        return f"models:/{self.model}@{self.alias}"


@frozen
class ModelState(External):
    """A model's aliases and approvals: steps that act on them (promotion) read this.

    The step receives the model name; its cache key changes whenever an alias
    moves or an approval is recorded, so a promotion step reruns exactly then.
    """

    model: str

    def fingerprint(self, app: Any) -> str:
        names = {m.name for m in app.registry.list_models()}
        if self.model not in names:
            return "none"
        state = {
            "aliases": app.registry.aliases(self.model),
            "approvals": sorted(
                (v.version, a.by)
                for v in app.registry.list_versions(self.model)
                for a in v.governance.approvals
            ),
            "promotion": app.registry.policy.rules,  # a changed [promotion] reruns it too
        }
        return hashlib.sha256(canonical_json(state).encode()).hexdigest()

    def resolve(self, app: Any) -> str:
        return self.model

    def describe(self, app: Any) -> str:
        return f"models:/{self.model}"


def files(pattern: str) -> Files:
    """External input files matching ``pattern`` (relative to the project root)."""
    return Files(pattern)


def model_alias(model: str, alias: str = "production") -> ModelAlias:
    """The version ``alias`` of ``model`` points at when the step runs."""
    return ModelAlias(model, alias)


def model_state(model: str) -> ModelState:
    """A model's aliases and approvals (for steps that promote)."""
    return ModelState(model)
