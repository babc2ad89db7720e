"""Output helpers shared by commands: JSON and aligned tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click


def echo_json(value: Any) -> None:
    """Print ``value`` as strict, indented JSON (datetimes and paths as strings).

    NaN and infinities (a metric that diverged, an AUC of one class) print as
    ``null``: strict JSON has no spelling for them, and a consumer's parser must
    not choke on ``NaN``.
    """
    import json

    click.echo(json.dumps(_finite(value), indent=2, default=str, allow_nan=False))


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None``, containers walked."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows as left-aligned columns under a header."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        click.echo(click.style(line, bold=True) if n == 0 else line)
