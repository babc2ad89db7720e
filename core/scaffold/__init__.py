"""``conveyor init``: the files of a new project, from ``template/``."""

from __future__ import annotations

import re
import string
from importlib import resources
from pathlib import Path

from conveyor.errors import AlreadyExistsError


def scaffold(target: Path, *, project_name: str | None = None, force: bool = False) -> list[Path]:
    """Write the template into ``target``; refuses to overwrite unless ``force``.

    Files named ``*.tmpl`` are filled in (``$project_name``, ``$model_name``) and
    lose the suffix.  Returns the files written, in order.
    """
    template = resources.files(__name__) / "template"
    name = project_name or target.resolve().name
    model_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "model"
    planned: list[tuple[Path, str]] = []
    for entry in sorted(template.iterdir(), key=lambda e: e.name):
        if not entry.is_file() or entry.name.startswith("__"):
            continue
        text = entry.read_text(encoding="utf-8")
        out_name = entry.name
        if out_name.endswith(".tmpl"):
            out_name = out_name.removesuffix(".tmpl")
            text = string.Template(text).substitute(project_name=name, model_name=model_name)
        out_name = out_name.replace("dot-", ".", 1) if out_name.startswith("dot-") else out_name
        planned.append((target / out_name, text))
    existing = [path for path, _ in planned if path.exists()]
    if existing and not force:
        raise AlreadyExistsError(
            f"{', '.join(str(p) for p in existing)} already exist(s); nothing was written",
            hint="choose an empty folder, or pass --force to overwrite these files",
        )
    target.mkdir(parents=True, exist_ok=True)
    for path, text in planned:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return [path for path, _ in planned]


def write_example_data(
    folder: Path, *, rows: int = 20_000, days: int = 28, seed: int = 0, force: bool = False
) -> Path:
    """Write a synthetic, time-stamped batch (``conveyor.ml.data``) as Parquet."""
    from conveyor.ml.data import generate

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "batch-0001.parquet"
    if path.exists() and not force:
        raise AlreadyExistsError(
            f"{path} already exists; nothing was written", hint="pass --force to overwrite it"
        )
    frame = generate(rows, days=days, seed=seed)
    tmp = folder / f".{path.name}.tmp"
    frame.write_parquet(tmp)
    tmp.replace(path)
    return path
