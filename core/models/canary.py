"""Child-process canary: parse a model text and predict with it in a throw-away process.

LightGBM's text parser has had memory-safety bugs (CVE-2024-43598; crafted files
still abort it), so a model is parsed in a child first: a crafted file kills the
child, never the caller.  Only that is isolated: here, in the caller, the metadata
is read, and the sample (or, without one, a few rows built from the signature, so the
trees are walked too) is validated and encoded by the model's signature, exactly as
:func:`conveyor.models.inference.predict` does.  The text, the checks the child makes
(SHA-256, feature names) and the float64 matrix go into a private temporary
directory, and the child, :mod:`conveyor.models.canary_child` run as a script,
calls LightGBM's C library (importing neither the package nor numpy), checks, parses,
predicts and answers in JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from conveyor.convert import to_tuple
from conveyor.errors import ConveyorError
from conveyor.models import canary_child
from conveyor.models.canary_child import CHECKS_FILE, MODEL_FILE, SAMPLE_FILE

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import polars as pl

    from conveyor.models.signature import Signature


@frozen(kw_only=True)
class CanaryRun:
    """What the child process did.

    Attributes:
        ok: it loaded the model and predicted.
        reason: why not, in one line (``""`` when ``ok``).
        returncode: its exit status (negative: killed by that signal; None: timed out).
        seconds: wall time.
        predictions: what it predicted (empty unless ``ok``).
        sha256: the hash of the text it loaded.
        stderr: the tail of its standard error.
    """

    ok: bool
    reason: str = ""
    returncode: int | None = None
    seconds: float = 0.0
    predictions: tuple[float, ...] = field(default=(), converter=to_tuple)
    sha256: str | None = None
    stderr: str = ""


def run_canary(
    model_text: str,
    metadata_json: str,
    sample: pl.DataFrame | None = None,
    *,
    timeout: float = 120.0,
) -> CanaryRun:
    """Load ``model_text`` in a child process and predict ``sample`` there.

    Never raises for what the child does: a crash, a refusal, a timeout or an
    unreadable answer is a :class:`CanaryRun` with ``ok=False`` and a reason.
    """
    return start_canary(model_text, metadata_json, sample, timeout=timeout).result()


class PendingCanary:
    """A canary child that is running: :meth:`result` waits for it (at most ``timeout``
    seconds from its start) and removes its private directory."""

    def __init__(self, directory: tempfile.TemporaryDirectory[str], timeout: float) -> None:
        self._directory = directory
        self._timeout = timeout
        self._started = time.perf_counter()
        self._done: CanaryRun | None = None
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        # run as a script (not -m): importing the conveyor package would cost start-up;
        # -P keeps the script's folder (core/models) off sys.path
        self._proc = subprocess.Popen(
            [sys.executable, "-P", canary_child.__file__, directory.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
            errors="replace",  # a crafted text's bytes can reach LightGBM's messages
            cwd=directory.name,
            env=env,
        )

    @classmethod
    def refused(cls, reason: str) -> PendingCanary:
        """A canary refused before any child started (``returncode`` 2, as the child's)."""
        pending = cls.__new__(cls)
        pending._done = CanaryRun(ok=False, returncode=2, reason=reason, stderr=reason)
        return pending

    def result(self) -> CanaryRun:
        """What the child did (the same object on every call)."""
        if self._done is None:
            try:
                self._done = self._collect()
            finally:
                self._directory.cleanup()
        return self._done

    def discard(self) -> None:
        """Kill the child if it still runs and remove its directory."""
        if self._done is None:
            self._proc.kill()
            self._proc.communicate()
            self._done = CanaryRun(ok=False, reason="discarded")
            self._directory.cleanup()

    def _collect(self) -> CanaryRun:
        proc = self._proc
        remaining = max(0.0, self._timeout - (time.perf_counter() - self._started))
        try:
            stdout, stderr = proc.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return CanaryRun(
                ok=False,
                seconds=time.perf_counter() - self._started,
                reason=f"the child process did not load and predict within {self._timeout:g} s",
            )
        seconds = time.perf_counter() - self._started
        stderr = stderr.strip()[-2000:]
        if proc.returncode != 0:
            how = (
                f"was killed by signal {-proc.returncode}"
                if proc.returncode < 0
                else f"exited with status {proc.returncode}"
            )
            return CanaryRun(
                ok=False,
                returncode=proc.returncode,
                seconds=seconds,
                stderr=stderr,
                reason=f"the child {how}: {stderr.splitlines()[-1] if stderr else 'no output'}",
            )
        try:
            result = json.loads(stdout)
            predictions = [float(v) for v in result["predictions"]]
        except (ValueError, KeyError, TypeError) as exc:
            return CanaryRun(
                ok=False,
                returncode=0,
                seconds=seconds,
                stderr=stderr,
                reason=f"the child process answered unreadably: {exc}",
            )
        return CanaryRun(
            ok=True,
            returncode=0,
            seconds=seconds,
            predictions=predictions,
            sha256=result.get("sha256"),
            stderr=stderr,
        )


def start_canary(
    model_text: str,
    metadata_json: str,
    sample: pl.DataFrame | None = None,
    *,
    timeout: float = 120.0,
) -> PendingCanary:
    """Start :func:`run_canary`'s child and return at once, so the caller can work
    while it runs; :meth:`PendingCanary.result` collects it.

    Metadata or a sample that does not fit the signature is refused here, as the child
    refuses a model: the run is not ``ok`` and its reason says why.
    """
    from conveyor.models.inference import Predictor
    from conveyor.models.model import parse_metadata
    from conveyor.models.signature import Signature

    try:
        metadata = parse_metadata(metadata_json)
        signature = Signature.from_dict(metadata["signature"])
        matrix = Predictor(signature).matrix(sample_for(signature) if sample is None else sample)
    except ConveyorError as exc:
        return PendingCanary.refused(f"{type(exc).__name__}: {exc.message}")
    directory = tempfile.TemporaryDirectory(prefix="conveyor-canary-")  # mode 0700
    try:
        write_inputs(Path(directory.name), model_text, metadata["sha256"], signature.names, matrix)
        return PendingCanary(directory, timeout)
    except BaseException:
        directory.cleanup()
        raise


def write_inputs(
    directory: Path, model_text: str, sha256: str, features: Sequence[str], matrix: np.ndarray
) -> None:
    """Write what the child reads (:mod:`conveyor.models.canary_child`) into ``directory``:
    the text, the checks it makes and ``matrix`` as raw row-major float64s."""
    import numpy as np

    matrix = np.ascontiguousarray(matrix, dtype=np.float64).reshape(len(matrix), -1)
    (directory / MODEL_FILE).write_text(model_text, encoding="utf-8")
    checks = {
        "sha256": sha256,
        "features": list(features),
        "rows": matrix.shape[0],
        "columns": matrix.shape[1] if matrix.shape[0] else len(features),
    }
    (directory / CHECKS_FILE).write_text(json.dumps(checks), encoding="utf-8")
    (directory / SAMPLE_FILE).write_bytes(matrix.tobytes())


def sample_for(signature: Signature, rows: int = 4) -> pl.DataFrame:
    """A few rows every feature of ``signature`` accepts: zeros and ones, each category,
    and missing values where allowed, so prediction walks both sides of splits."""
    import polars as pl

    from conveyor.models.dtypes import to_polars

    columns: dict[str, pl.Series] = {}
    for spec in signature.features:
        if spec.categories is not None:
            cats: list[str | None] = list(spec.categories) or [None]
            values: list[Any] = [cats[i % len(cats)] for i in range(rows)]
            dtype: pl.DataType | type[pl.DataType] = pl.String
        else:
            values = [float(i % 2) for i in range(rows)]
            dtype = pl.Float64 if spec.dtype.startswith("float") else to_polars(spec.dtype)
            if dtype == pl.Boolean:
                values = [bool(v) for v in values]
        if spec.nullable and rows > 2:
            values[-1] = None
        columns[spec.name] = pl.Series(spec.name, values, dtype=dtype, strict=False)
    return pl.DataFrame(columns)
