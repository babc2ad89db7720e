"""The ``new_data`` trigger: fire when enough settled new rows arrived under a URI.

Files are listed through fsspec (a local path, ``file://``, ``s3://``, ...).  A file
is *settled* once nothing wrote to it for ``settle`` (its modification time is
that old); unsettled files are neither read nor counted, so a half-written file
is never read.  Names starting with ``.`` or ``_`` (temporary files, ``_SUCCESS``
markers) are ignored.  New means modified after the newest file the last firing
covered (its watermark), so rewritten content counts as new too.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from attrs import Factory, field, frozen

from conveyor.interfaces.triggers import Trigger, TriggerDecision

#: How many new file names the evidence lists (the fingerprint covers them all).
_SAMPLE = 20


def _positive_or_zero(_instance: Any, _attribute: Any, value: Any) -> None:
    if value < type(value)(0):
        raise ValueError(f"{_attribute.name} cannot be negative")


@frozen(kw_only=True)
class NewDataConfig:
    """The new-data trigger's keys of ``[triggers.<name>]``.

    Attributes:
        uri: the folder or prefix to watch (``data/incoming``, ``s3://bucket/raw``).
        pattern: glob the path below ``uri`` must match (default every file).
        min_rows: fire only once the new files hold at least this many rows.
        settle: a file is read only when it was not modified for this long.
        storage_options: fsspec options (endpoint, credentials as env references).
    """

    uri: str
    pattern: str = "*"
    min_rows: int = field(default=1, validator=_positive_or_zero)
    settle: timedelta = field(default=timedelta(minutes=1), validator=_positive_or_zero)
    storage_options: dict[str, Any] = Factory(dict)


def _mtime(info: dict[str, Any]) -> float:
    value = info.get("mtime", info.get("LastModified", info.get("last_modified")))
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return datetime.fromisoformat(value).timestamp()
    raise ValueError(f"{info.get('name')}: the filesystem reports no modification time")


def count_rows(fs: Any, path: str) -> int:
    """Rows in one file: Parquet from its footer, CSV/TSV without the header line,
    JSON lines by line; any other file counts as one row."""
    lower = path.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        with fs.open(path, "rb") as handle:
            return int(pq.read_metadata(handle).num_rows)
    if lower.endswith((".csv", ".tsv", ".jsonl", ".ndjson")):
        lines = 0
        with fs.open(path, "rb") as handle:
            for line in handle:
                lines += bool(line.strip())
        return max(lines - 1, 0) if lower.endswith((".csv", ".tsv")) else lines
    return 1


class NewDataTrigger(Trigger):
    """Fires once per settled set of new files holding ``min_rows`` rows or more.

    The key is the fingerprint of that set (paths, sizes, modification times), so
    the same files fire once however many watchers list them.
    """

    def __init__(self, *, app: Any, config: NewDataConfig) -> None:
        self.config = config

    def _filesystem(self) -> tuple[Any, str]:
        from fsspec.core import url_to_fs

        return url_to_fs(self.config.uri, **self.config.storage_options)

    def listing(self) -> list[tuple[str, int, float]]:
        """``(path, size, mtime)`` of every matching file under ``uri``, sorted."""
        fs, root = self._filesystem()
        root = root.rstrip("/")
        found = fs.find(root, detail=True) if fs.exists(root) else {}
        files = []
        for path, info in found.items():
            relative = path[len(root) :].lstrip("/")
            names = relative.split("/")
            if info.get("type") == "directory" or any(n[:1] in (".", "_") for n in names):
                continue
            if fnmatch.fnmatch(relative, self.config.pattern):
                files.append((path, int(info.get("size") or 0), _mtime(info)))
        return sorted(files)

    def evaluate(self, now: datetime, last_event: Any) -> TriggerDecision:
        cfg = self.config
        mark = last_event.details.get("watermark") if last_event is not None else None
        after = (float(mark[0]), str(mark[1])) if isinstance(mark, list) else (-1.0, "")
        cutoff = now.timestamp() - cfg.settle.total_seconds()
        new, unsettled = [], 0
        for path, size, mtime in self.listing():
            if (mtime, path) <= after:
                continue
            if mtime > cutoff:
                unsettled += 1
            else:
                new.append((path, size, mtime))
        waiting = f"; {unsettled} file(s) still settling" if unsettled else ""
        if not new:
            return TriggerDecision(
                fire=False,
                details={"settling": unsettled},
                reason=f"no new settled files under {cfg.uri}{waiting}",
            )
        fs, _ = self._filesystem()
        rows = sum(count_rows(fs, path) for path, _, _ in new)
        if rows < cfg.min_rows:
            return TriggerDecision(
                fire=False,
                details={"files": len(new), "rows": rows, "settling": unsettled},
                reason=f"{len(new)} new file(s) with {rows} row(s) under {cfg.uri}, "
                f"fewer than min_rows = {cfg.min_rows}{waiting}",
            )
        fingerprint = hashlib.sha256(json.dumps(new).encode()).hexdigest()
        newest = max(new, key=lambda f: (f[2], f[0]))
        return TriggerDecision(
            fire=True,
            key=f"new-data-{fingerprint[:32]}",
            details={
                "uri": cfg.uri,
                "files": len(new),
                "rows": rows,
                "sample": [p for p, _, _ in new[:_SAMPLE]],
                "fingerprint": fingerprint,
                "watermark": [newest[2], newest[0]],
                "settling": unsettled,
            },
            reason=f"{len(new)} new file(s) with {rows} row(s) under {cfg.uri}{waiting}",
        )
