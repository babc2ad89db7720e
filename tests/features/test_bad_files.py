"""Bad data files get one clear ConveyorError, never a traceback, and nothing is written.

Through ``conveyor features ingest VIEW FILE``, ``FeatureStore.ingest(view, path)`` and
the pipeline's ``load_data``; the property-based tests feed random truncations and
byte flips of a valid Parquet file through the CLI and the API.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.errors import ConveyorError, ValidationError
from conveyor.features import Entity, Feature, FeatureView
from conveyor.training import load_data

T0 = datetime(2024, 3, 1, tzinfo=UTC)
VIEW = FeatureView(
    name="stats",
    entities=[Entity(name="customer", join_keys="customer_id")],
    features=[Feature(name="spend"), Feature(name="orders", dtype="int64")],
)
DEFINITIONS = """
from conveyor.features import Entity, Feature, FeatureView
stats = FeatureView(name="stats", entities=[Entity(name="customer", join_keys="customer_id")],
                    features=[Feature(name="spend"), Feature(name="orders", dtype="int64")])
"""
FRAME = pl.DataFrame(
    {
        "customer_id": list(range(300)),
        "event_timestamp": [T0 + timedelta(minutes=i) for i in range(300)],
        "spend": [i / 3 for i in range(300)],
        "orders": list(range(300)),
    }
)


def valid_parquet(path: Path, *, checksums: bool = True) -> bytes:
    pq.write_table(FRAME.to_arrow(), path, write_page_checksum=checksums, row_group_size=100)
    return path.read_bytes()


def hostile_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what its error message must say)."""
    good = valid_parquet(folder / "good.parquet", checksums=False)
    flipped = bytearray(good)
    flipped[4] ^= 0xFF  # the first page header, right after the leading PAR1
    with_sums = bytearray(valid_parquet(folder / "sums.parquet"))
    with_sums[200] ^= 0x01  # inside the first data page: the checksum catches it
    files = {
        "not parquet": ("notes.parquet", b"customer_id,spend\n1,2.0\n", "is not a Parquet file"),
        "zero bytes": ("empty.parquet", b"", "is empty (0 bytes)"),
        "truncated": ("cut.parquet", good[: len(good) // 2], "is cut short"),
        "footer cut": ("cut2.parquet", good[:-3], "is cut short"),
        "header only": ("par1.parquet", b"PAR1", "is cut short"),
        "byte flipped": ("flip.parquet", bytes(flipped), "is a damaged Parquet file"),
        "data page flipped": ("page.parquet", bytes(with_sums), "is a damaged Parquet file"),
        "malformed csv": (
            "bad.csv",
            b'customer_id,spend\n1,2.0\n"2,3.0\n',
            "not a well-formed CSV",
        ),
        "empty csv": ("empty.csv", b"", "is empty (0 bytes)"),
        "parquet named csv": ("binary.csv", good, "not a well-formed CSV"),
    }
    out = {}
    for name, (file, data, says) in files.items():
        (folder / file).write_bytes(data)
        out[name] = (folder / file, says)
    return out


def stored(app) -> list[tuple[str, str]]:
    """Everything the artifact store holds (keys and hashes): the "store unchanged" check."""
    return [(i.key, i.sha256) for i in app.artifacts.list("")]


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "features", raising=False)


@pytest.fixture
def project(cli, tmp_path: Path) -> Path:
    (tmp_path / "features.py").write_text(DEFINITIONS)
    assert cli.invoke("features", "apply").exit_code == 0
    return tmp_path


@pytest.mark.parametrize(
    "name",
    [
        "not parquet",
        "zero bytes",
        "truncated",
        "footer cut",
        "header only",
        "byte flipped",
        "data page flipped",
        "malformed csv",
        "empty csv",
        "parquet named csv",
    ],
)
def test_cli_ingest_refuses_a_bad_file_in_one_line(
    cli, conveyor_app, project: Path, name: str
) -> None:
    file, says = hostile_files(project)[name]
    before = stored(conveyor_app)
    result = cli.invoke("features", "ingest", "stats", str(file))
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"Error: {file} ") and says in lines[0], result.output
    assert lines[1].startswith("Hint: "), result.output
    assert lines[2:] == ["(run with --traceback or CONVEYOR_DEBUG=1 for details)"]
    assert "Traceback" not in result.output
    assert stored(conveyor_app) == before


def test_api_ingest_and_load_data_refuse_bad_files(conveyor_app, tmp_path: Path) -> None:
    store = conveyor_app.features
    store.apply([VIEW])
    before = stored(conveyor_app)
    for file, says in hostile_files(tmp_path).values():
        with pytest.raises(ValidationError, match=re.escape(says)) as caught:
            store.ingest("stats", file)
        assert str(file) in caught.value.message and "\n" not in caught.value.message
        assert caught.value.hint
        with pytest.raises(ValidationError, match=re.escape(says)):
            load_data([str(tmp_path / "good.parquet"), str(file)])
    assert stored(conveyor_app) == before
    assert store.batches("stats") == []


def test_good_files_still_ingest_by_path(conveyor_app, tmp_path: Path) -> None:
    store = conveyor_app.features
    store.apply([VIEW])
    valid_parquet(tmp_path / "good.parquet")
    FRAME.write_csv(tmp_path / "good.csv")
    assert store.ingest("stats", tmp_path / "good.parquet").rows == 300
    # the same rows by CSV are read in full and found stored already: nothing is written
    again = store.ingest("stats", str(tmp_path / "good.csv"))
    assert (again.rows, again.skipped) == (0, 300)
    assert load_data([tmp_path / "good.parquet"]).equals(FRAME)


# -- property-based: random damage to a valid file ------------------------------------------


def damage(good: bytes, data: st.DataObject) -> bytes:
    """A truncation or a few flipped bits of ``good``, drawn by Hypothesis."""
    if data.draw(st.booleans(), label="truncate"):
        return good[: data.draw(st.integers(0, len(good) - 1), label="length")]
    out = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        at = data.draw(st.integers(0, len(good) - 1), label="at")
        out[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    return bytes(out)


PROPERTY = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@PROPERTY
@given(data=st.data())
def test_cli_never_shows_a_traceback_for_a_damaged_file(
    cli, conveyor_app, project: Path, data: st.DataObject
) -> None:
    good = valid_parquet(project / "good.parquet")
    file = project / "damaged.parquet"
    file.write_bytes(damage(good, data))
    before = stored(conveyor_app)
    # the cli fixture does not catch exceptions: any non-Conveyor error fails the test
    result = cli.invoke("features", "ingest", "stats", str(file))
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        assert result.exit_code == 1
        assert result.output.startswith(f"Error: {file} "), result.output
        assert stored(conveyor_app) == before
    # a flip that leaves a readable, schema-valid file (e.g. in a statistic) ingests


@PROPERTY
@given(data=st.data())
def test_api_raises_only_conveyor_errors_for_a_damaged_file(
    conveyor_app, tmp_path: Path, data: st.DataObject
) -> None:
    store = conveyor_app.features
    store.apply([VIEW])
    good = valid_parquet(tmp_path / "good.parquet")
    file = tmp_path / "damaged.parquet"
    file.write_bytes(damage(good, data))
    before = stored(conveyor_app)
    error = conveyor_error(lambda: store.ingest("stats", file))
    if error is not None:
        assert "\n" not in error.message and error.hint
        assert stored(conveyor_app) == before
    error = conveyor_error(lambda: load_data([file]))
    if error is not None:
        assert str(file) in error.message


def conveyor_error(fn) -> ConveyorError | None:
    """The ConveyorError ``fn`` raises, or None; any other exception propagates (fails)."""
    try:
        fn()
    except ConveyorError as exc:
        return exc
    return None
