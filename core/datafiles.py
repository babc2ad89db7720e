"""Reading data files that come from outside Conveyor (Parquet or CSV), guarded.

A file handed to ``conveyor features ingest``, ``FeatureStore.ingest`` or the
pipeline's ``load_data`` may be anything: not Parquet at all, empty, cut short,
damaged.  :func:`read_table_file` turns every such file into one
:class:`~conveyor.errors.ValidationError` that names the file, says what is wrong
and what to do, and never lets a reader's exception or traceback through.

Parquet is read in a guarded mode (fuzzed Parquet files have crashed Arrow):

* the structure is checked before any parser sees the bytes: at least 12 bytes,
  the ``PAR1`` marker at both ends, a footer length that fits in the file;
* the footer is decoded with bounded Thrift sizes, so a crafted length cannot
  make the reader allocate without limit;
* page checksums are verified where the writer stored them, so a flipped byte in
  a data page is an error rather than a silently different value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import ValidationError

if TYPE_CHECKING:
    import polars as pl

MAGIC = b"PAR1"
#: Footer decoding bounds (pyarrow's defaults are 100 MB of strings, 1M list items).
THRIFT_STRING_LIMIT = 64 * 2**20
THRIFT_CONTAINER_LIMIT = 1_000_000
_AGAIN = "export or copy the file again from its source; nothing was read from it"


def read_table_file(path: str | os.PathLike[str]) -> pl.DataFrame:
    """The table in a Parquet file (or a CSV file named ``*.csv``), or a ValidationError."""
    file = Path(path)
    if file.suffix.lower() == ".csv":
        return read_csv_file(file)
    return read_parquet_file(file)


def read_parquet_file(path: str | os.PathLike[str]) -> pl.DataFrame:
    """A Parquet file read in the guarded mode described above."""
    import polars as pl
    import pyarrow.parquet as pq

    file = Path(path)
    size = _size(file)
    if size == 0:
        raise ValidationError(f"{file} is empty (0 bytes)", hint=_AGAIN)
    with open(file, "rb") as f:
        head = f.read(4)
        f.seek(max(0, size - 8))
        tail = f.read(8)
    if size < 12 or head != MAGIC or tail[4:] != MAGIC:
        if head == MAGIC or (size < 12 and MAGIC.startswith(head)):
            raise _bad(file, f"is cut short ({size} bytes, no Parquet footer at the end)")
        raise ValidationError(
            f"{file} is not a Parquet file (it does not begin and end with 'PAR1')",
            hint="pass a Parquet file, or a CSV file named *.csv",
        )
    footer = int.from_bytes(tail[:4], "little")
    if footer <= 0 or footer > size - 12:
        raise _bad(file, f"has a footer length ({footer} bytes) that does not fit the file")
    try:
        reader = pq.ParquetFile(
            str(file),
            page_checksum_verification=True,
            thrift_string_size_limit=THRIFT_STRING_LIMIT,
            thrift_container_size_limit=THRIFT_CONTAINER_LIMIT,
        )
        with reader:
            table = reader.read()
        return pl.from_arrow(table)  # type: ignore[return-value]
    except Exception as exc:  # any reader error on untrusted bytes means a damaged file
        raise _bad(file, f"is a damaged Parquet file: {_first_line(exc)}") from None
    except BaseException as exc:  # a Rust panic inside a reader is a BaseException
        if type(exc).__name__ != "PanicException":
            raise
        raise _bad(file, f"is a damaged Parquet file: {_first_line(exc)}") from None


def read_csv_file(path: str | os.PathLike[str]) -> pl.DataFrame:
    """A CSV file with a header row (dates parsed), or a ValidationError."""
    import polars as pl

    file = Path(path)
    if _size(file) == 0:
        raise ValidationError(
            f"{file} is empty (0 bytes)", hint="pass a CSV file with a header row and data rows"
        )
    try:
        return pl.read_csv(file, try_parse_dates=True)
    except Exception as exc:
        raise ValidationError(
            f"{file} is not a well-formed CSV file: {_first_line(exc)}",
            hint="fix the file (one header row, the same number of "
            "fields on every row, UTF-8), or pass Parquet",
        ) from None
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise ValidationError(
            f"{file} is not a well-formed CSV file: {_first_line(exc)}",
            hint="fix the file, or pass Parquet",
        ) from None


def _size(file: Path) -> int:
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        raise ValidationError(f"{file} does not exist", hint="check the path") from None
    if not file.is_file():
        raise ValidationError(f"{file} is not a file", hint="pass the path of a data file")
    return size


def _bad(file: Path, what: str) -> ValidationError:
    return ValidationError(f"{file} {what}", hint=_AGAIN)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    line = text.splitlines()[0]
    return line if len(line) <= 200 else line[:197] + "..."
