"""Child-process canary: parse a model text and predict with it in a throw-away process.

LightGBM's text parser has had memory-safety bugs (CVE-2024-43598; crafted files
still abort it), so a model is parsed in a child first: a crafted file kills the
child, never the caller.  :func:`run_canary` writes the text, its metadata
(signature, SHA-256) and optionally a sample (Arrow IPC) into a private temporary
directory and runs ``python -m conveyor.models.canary DIR``.  The child loads the
model as every caller does (:meth:`TrainedModel.from_parts`: hash check, text
parse, signature check), predicts the sample -- or, without one, a few rows built
from the signature, so the trees are walked too -- and prints one JSON object:
``{"sha256": ..., "rows": n, "predictions": [...]}`` (floats round-trip exactly).
A refused model exits with status 2 and the reason on stderr.
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
from conveyor.models.model import METADATA_FILE, MODEL_FILE

if TYPE_CHECKING:
    import polars as pl

    from conveyor.models.signature import Signature

SAMPLE_FILE = "sample.arrow"
#: packages LightGBM imports if installed, which the child does not need
_NOT_NEEDED = ("sklearn", "pandas", "dask", "distributed", "matplotlib", "graphviz", "datatable")


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
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor.models.canary", directory.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=directory.name,
            env=env,
        )

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
    while it runs; :meth:`PendingCanary.result` collects it."""
    directory = tempfile.TemporaryDirectory(prefix="conveyor-canary-")  # mode 0700
    try:
        path = Path(directory.name)
        (path / MODEL_FILE).write_text(model_text, encoding="utf-8")
        (path / METADATA_FILE).write_text(metadata_json, encoding="utf-8")
        if sample is not None:
            sample.write_ipc(path / SAMPLE_FILE)
        return PendingCanary(directory, timeout)
    except BaseException:
        directory.cleanup()
        raise


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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m conveyor.models.canary DIR", file=sys.stderr)
        return 2
    # LightGBM imports scikit-learn, pandas and dask when they are installed, for APIs
    # the canary never uses; refusing them cuts the child's start-up several-fold
    # (`import lightgbm` 3.8 s -> 1 s here), and the gate and hot swap wait for it.
    for name in _NOT_NEEDED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    import polars as pl

    from conveyor.errors import ConveyorError
    from conveyor.models.inference import predict
    from conveyor.models.model import TrainedModel

    directory = Path(args[0])
    try:
        model = TrainedModel.from_parts(
            (directory / MODEL_FILE).read_text(encoding="utf-8"),
            (directory / METADATA_FILE).read_text(encoding="utf-8"),
        )
        path = directory / SAMPLE_FILE
        sample = pl.read_ipc(path) if path.exists() else sample_for(model.signature)
        predictions = predict(model, sample)
    except ConveyorError as exc:
        hint = f" (hint: {exc.hint})" if exc.hint else ""
        print(f"{type(exc).__name__}: {exc.message}{hint}", file=sys.stderr)  # one line
        return 2
    json.dump(
        {
            "sha256": model.sha256,
            "rows": int(predictions.size),
            "predictions": [float(v) for v in predictions],
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
