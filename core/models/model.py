"""The trained-model value: LightGBM text, its SHA-256, the booster parsed from it,
and its :class:`~conveyor.models.signature.Signature`; saved and loaded as files.

Nothing is ever pickled: a model is ``model.txt`` (LightGBM text) plus
``model.json`` (signature, hash, best iteration, parameters, format).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import evolve, field, frozen

from conveyor.errors import IntegrityError
from conveyor.models.errors import ModelLoadError
from conveyor.models.signature import Signature

if TYPE_CHECKING:
    import lightgbm as lgb

    from conveyor.models.inference import Predictor

MODEL_FILE = "model.txt"
METADATA_FILE = "model.json"
TEXT_FORMAT = "lightgbm-text"
# LightGBM objectives -> the signature's objective (what evaluation and the gate need)
_BINARY = ("binary", "cross_entropy", "xentropy")
_REGRESSION = (
    "regression",
    "regression_l1",
    "l1",
    "l2",
    "huber",
    "fair",
    "poisson",
    "quantile",
    "mape",
    "gamma",
    "tweedie",
)


def sha256_text(text: str) -> str:
    """SHA-256 (hex) of a model text, UTF-8 encoded."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_model_text(model_text: str) -> None:
    """Refuse anything that is not LightGBM text (pickles, JSON dumps, other formats)
    before a parser sees it (:class:`ModelLoadError`)."""
    if not model_text.startswith("tree\n"):
        raise ModelLoadError(
            "not a LightGBM text model (it must start with 'tree')",
            hint="only LightGBM text models are loaded; nothing is unpickled",
        )


def text_objective(model_text: str) -> str:
    """The signature objective (``binary``/``regression``) named in a model text's
    header, or ``""`` when the header names another one."""
    for line in model_text.split("\n", 64)[:64]:
        if line.startswith("objective="):
            name = line.removeprefix("objective=").split(" ", 1)[0]
            return "binary" if name in _BINARY else "regression" if name in _REGRESSION else ""
    return ""


def load_booster(model_text: str) -> lgb.Booster:
    """Parse LightGBM model text (ModelLoadError when LightGBM refuses it).

    Parse only verified text, or in a child process: LightGBM's parser can abort
    the process on crafted text (see :mod:`conveyor.models.canary`).
    """
    import lightgbm as lgb

    check_model_text(model_text)
    try:
        return lgb.Booster(model_str=model_text)
    except lgb.basic.LightGBMError as exc:
        raise ModelLoadError(
            f"LightGBM cannot load the model text: {exc}",
            hint="the model text is corrupt: re-train or re-register",
        ) from None


@frozen(kw_only=True)
class TrainedModel:
    """A model: LightGBM booster, its text, hash and signature.

    The booster is always the one parsed from ``model_text``, so a model loaded
    back from its text predicts exactly what the freshly trained one did.

    Attributes:
        booster: the ``lightgbm.Booster``.
        signature: the input schema.
        model_text: LightGBM text format (what is stored).
        sha256: SHA-256 of ``model_text``.
        best_iteration: number of boosting rounds kept.
        params: the LightGBM parameters trained with.
        evals: validation metric history per round (metric -> values).
    """

    booster: lgb.Booster = field(eq=False, repr=False)
    signature: Signature
    model_text: str = field(eq=False, repr=False)
    sha256: str
    best_iteration: int = 0
    params: dict[str, Any] = field(factory=dict)
    evals: dict[str, list[float]] = field(factory=dict, eq=False, repr=False)
    _predictor: Predictor | None = field(default=None, init=False, eq=False, repr=False)

    @property
    def predictor(self) -> Predictor:
        """The signature compiled for prediction (built once per model)."""
        if self._predictor is None:
            from conveyor.models.inference import Predictor

            object.__setattr__(self, "_predictor", Predictor(self.signature))
        return self._predictor  # type: ignore[return-value]

    def metadata(self) -> dict[str, Any]:
        """What is stored beside the model text: signature, hash, iteration, params."""
        return {
            "signature": self.signature.to_dict(),
            "sha256": self.sha256,
            "best_iteration": self.best_iteration,
            "params": _json_safe(self.params),
            "format": TEXT_FORMAT,
        }

    def metadata_json(self) -> str:
        return json.dumps(self.metadata(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_text(
        cls,
        model_text: str,
        signature: Signature,
        *,
        sha256: str | None = None,
        best_iteration: int = 0,
        params: Mapping[str, Any] | None = None,
    ) -> TrainedModel:
        """Load a model from its LightGBM text; the hash is checked when given.

        A signature without an objective gets the one the model text names.
        """
        digest = sha256_text(model_text)
        if sha256 is not None and digest != sha256:
            raise IntegrityError(
                f"model text SHA-256 {digest} does not match the recorded {sha256}",
                hint="the stored model is corrupt or was modified: re-register it",
            )
        check_model_text(model_text)
        if not signature.objective:
            objective = text_objective(model_text)
            if not objective:
                raise ModelLoadError(
                    "the model's objective is neither binary nor regression "
                    "and its signature does not say",
                    hint="record the objective in the signature",
                )
            signature = evolve(signature, objective=objective)
        booster = load_booster(model_text)
        if tuple(booster.feature_name()) != signature.names:
            raise ModelLoadError(
                f"model features {booster.feature_name()} do not match the signature's "
                f"{list(signature.names)}",
                hint="the model text and signature belong to different models",
            )
        return cls(
            booster=booster,
            signature=signature,
            model_text=model_text,
            sha256=digest,
            best_iteration=best_iteration or booster.current_iteration(),
            params=dict(params or {}),
        )

    @classmethod
    def from_parts(cls, model_text: str, metadata: str | bytes | Mapping[str, Any]) -> TrainedModel:
        """Load from the model text and :meth:`metadata_json` output, checking the hash."""
        meta = parse_metadata(metadata)
        return cls.from_text(
            model_text,
            Signature.from_dict(meta["signature"]),
            sha256=meta["sha256"],
            best_iteration=int(meta.get("best_iteration") or 0),
            params=meta.get("params") or {},
        )


def parse_metadata(metadata: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    """:meth:`TrainedModel.metadata_json` output, parsed and checked for its format."""
    if isinstance(metadata, str | bytes):
        try:
            metadata = json.loads(metadata)
        except ValueError as exc:
            raise ModelLoadError(f"model metadata is not valid JSON: {exc}") from None
    if (
        not isinstance(metadata, Mapping)
        or metadata.get("format") != TEXT_FORMAT
        or "sha256" not in metadata
        or "signature" not in metadata
    ):
        raise ModelLoadError(
            "model metadata is not a Conveyor LightGBM-text model",
            hint="models are written by save_model()",
        )
    return metadata


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


# --------------------------------------------------------------------------- files


def _write_atomic(path: Path, data: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model: TrainedModel, directory: str | os.PathLike[str]) -> Path:
    """Write ``model.txt`` and ``model.json`` into ``directory`` (each write-then-rename;
    the text first, so ``model.json`` never points at a text that is not there)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomic(directory / MODEL_FILE, model.model_text)
    _write_atomic(directory / METADATA_FILE, model.metadata_json())
    return directory


def load_model(directory: str | os.PathLike[str]) -> TrainedModel:
    """Load a model saved by :func:`save_model`, checking its SHA-256."""
    from conveyor.errors import NotFoundError

    directory = Path(directory)
    try:
        metadata = (directory / METADATA_FILE).read_text(encoding="utf-8")
        text = (directory / MODEL_FILE).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFoundError(
            f"no saved model in {directory}: {exc.filename} is missing",
            hint="save it with conveyor.models.save_model()",
        ) from None
    return TrainedModel.from_parts(text, metadata)
