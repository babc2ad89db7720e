"""Loading a registered model version: hash-verified, format-checked, canary-loaded.

This is how everything outside training gets a model from the registry (the gate's
incumbent, the CLI, the HTTP server): :func:`load_registered_model`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import TYPE_CHECKING, Any

from conveyor.errors import IntegrityError, NotFoundError
from conveyor.models.errors import ModelLoadError
from conveyor.models.model import TEXT_FORMAT, TrainedModel, check_model_text
from conveyor.models.signature import Signature

if TYPE_CHECKING:
    from conveyor.interfaces.registry import ModelVersion
    from conveyor.ml.profile import DataProfile
    from conveyor.models.canary import PendingCanary

#: SHA-256 of model texts that passed a canary in this process: the same bytes need
#: not be parsed in a child again.
_TRUSTED: set[str] = set()
_TRUSTED_LOCK = threading.Lock()


def resolve_version(
    app: Any, model: ModelVersion | str, version: int | None = None, *, alias: str | None = None
) -> ModelVersion:
    """The registry's version for ``model`` (a ``ModelVersion`` is returned as is; a
    name is read with ``version``, ``alias`` or, with neither, the latest; ``"name:3"``
    names a version)."""
    if not isinstance(model, str):
        return model
    from conveyor.interfaces.registry import parse_model_ref

    try:
        name, number = parse_model_ref(model)
    except ValueError as exc:
        raise NotFoundError(str(exc), hint="write NAME or NAME:VERSION") from None
    if number is not None and version is not None and number != version:
        raise NotFoundError(
            f"{model!r} and version={version} name two versions", hint="give the version once"
        )
    version = number if number is not None else version
    if alias is not None:
        if version is not None:
            raise NotFoundError(
                "give a version or an alias, not both", hint="e.g. churn:3, or alias='production'"
            )
        found = app.registry.resolve(name, alias)
        if found is None:
            raise NotFoundError(
                f"no version of model {name!r} holds alias {alias!r}",
                hint=f"see conveyor models show {name}",
            )
        return found
    return app.registry.get(name, version)


def registered_signature(version: ModelVersion) -> Signature:
    """The signature registered with ``version`` (registries written before the
    signature had label and objective kept the whole signature in its params)."""
    signature = version.signature
    legacy = (version.params or {}).get("conveyor.signature")
    if legacy is not None and not signature.label:
        signature = Signature.from_dict(legacy)
    if not signature.features:
        raise ModelLoadError(
            f"model {version.name} v{version.version} has no stored signature",
            hint="register models with their Signature",
        )
    return signature


def load_registered_model(
    app: Any, model: ModelVersion | str, version: int | None = None, **options: Any
) -> TrainedModel:
    """A registered model, ready to predict: :func:`start_registered_load` (``options``:
    ``alias``, ``canary``, ``timeout``), waited for."""
    return start_registered_load(app, model, version, **options).result()


def start_registered_load(
    app: Any,
    model: ModelVersion | str,
    version: int | None = None,
    *,
    alias: str | None = None,
    canary: bool = True,
    timeout: float = 120.0,
) -> PendingLoad:
    """Load a registered model, its canary child started and not waited for: the
    caller works meanwhile and :meth:`PendingLoad.result` returns the model.

    Every load reads the artifact through the artifact store and checks its bytes
    against the registered SHA-256 (:class:`IntegrityError`); only LightGBM text is
    accepted (:class:`ModelLoadError` for any other format: nothing is unpickled,
    and LightGBM cannot read its JSON dump back); both before this returns.  With
    ``canary`` the text is first parsed and exercised in a child process
    (:mod:`conveyor.models.canary`), once per process for the same bytes: a crafted
    file that crashes LightGBM's parser is reported as a :class:`ModelLoadError` by
    :meth:`PendingLoad.result` and never crashes the caller.
    """
    mv = resolve_version(app, model, version, alias=alias)
    label = f"model {mv.name} v{mv.version}"
    if mv.model_format != TEXT_FORMAT:
        raise ModelLoadError(
            f"{label} is stored as {mv.model_format!r}; only {TEXT_FORMAT} is loaded",
            hint="nothing is unpickled, and LightGBM reads back only its text format: "
            "register the model's text (Booster.model_to_string())",
        )
    data = app.artifacts.read_uri(mv.artifact_uri, sha256=mv.sha256)
    digest = hashlib.sha256(data).hexdigest()
    if digest != mv.sha256:  # checked here too: the store's own check is not relied on
        raise IntegrityError(
            f"{label}: its artifact has SHA-256 {digest}, the registry recorded {mv.sha256}",
            hint="the stored model is corrupt or was modified: re-register it",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelLoadError(
            f"{label} is not text, so not a LightGBM text model",
            hint="only LightGBM text models are loaded; nothing is unpickled",
        ) from None
    check_model_text(text)
    return PendingLoad(mv, text, registered_signature(mv), canary=canary, timeout=timeout)


class PendingLoad:
    """A registered model whose canary child may still run (:func:`start_registered_load`).

    ``version``, ``signature`` and ``sha256`` are known at once; :meth:`result` waits
    for the canary and parses the text in this process only once it passed.
    """

    def __init__(
        self,
        version: ModelVersion,
        text: str,
        signature: Signature,
        *,
        canary: bool,
        timeout: float,
    ) -> None:
        from conveyor.models.canary import start_canary

        self.version, self.signature, self.sha256 = version, signature, version.sha256
        self._text = text
        self._model: TrainedModel | None = None
        self._canary: PendingCanary | None = None
        with _TRUSTED_LOCK:
            trusted = self.sha256 in _TRUSTED
        if canary and not trusted:
            metadata = json.dumps(
                {"signature": signature.to_dict(), "sha256": self.sha256, "format": TEXT_FORMAT}
            )
            self._canary = start_canary(text, metadata, timeout=timeout)

    def result(self) -> TrainedModel:
        """The model, once its canary passed (:class:`ModelLoadError` when it did not)."""
        if self._model is not None:
            return self._model
        if self._canary is not None:
            run = self._canary.result()
            if not run.ok:
                raise ModelLoadError(
                    f"model {self.version.name} v{self.version.version} failed its canary "
                    f"load in a child process: {run.reason}",
                    hint="the stored model text is corrupt or crafted; it was not "
                    "loaded here: re-train or re-register it",
                )
            with _TRUSTED_LOCK:
                _TRUSTED.add(self.sha256)
            self._canary = None
        self._model = TrainedModel.from_text(
            self._text,
            self.signature,
            sha256=self.sha256,
            best_iteration=int(self.version.params.get("best_iteration") or 0),
        )
        return self._model

    def discard(self) -> None:
        """Stop the canary child if it still runs."""
        if self._canary is not None:
            self._canary.discard()


def load_registered_profile(app: Any, version: ModelVersion) -> DataProfile | None:
    """The training-data profile registered with a version, if any."""
    from conveyor.ml.profile import DataProfile

    if not version.profile_uri:
        return None
    return DataProfile.from_json(app.artifacts.read_uri(version.profile_uri))
