"""Write + read of a ~1 GB Parquet table: the local artifact store against raw pyarrow.

Run: pytest -m benchmark tests/benchmarks/bench_artifacts.py -s

Floor: the same work in plain pyarrow on the same disk: ``pyarrow.parquet.write_table``
to a file that is then fsync'd (file and folder: the write is durable, as the store's
is), and ``read_table(memory_map=True)`` (the store memory-maps too).  The store adds
what makes it safe: hashing while writing, the rename and manifest commit, and a
SHA-256 check of every byte before Arrow parses it (on the first read; a second read
of the unchanged blob skips it, and is reported on its own line).  Same table, same Parquet
settings, alternating runs, medians.  Between a write and its read, ``os.sync()``
(untimed) so neither read competes with the write-back of the other's dirty pages.
Goal: store write + read <= 1.15x the floor's.
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import tempfile
import time
from datetime import timedelta

import pytest

pytestmark = pytest.mark.benchmark

RUNS = 5
ROWS = 16_000_000
COLUMNS = 8  # float64: 8 x 16M x 8 B = 1.02 GB, incompressible
GOAL = 1.15


def _table():
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(0)
    return pa.table({f"x{i}": rng.standard_normal(ROWS) for i in range(COLUMNS)})


def _timed(fn):
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def durable_write(table, path: str) -> None:
    """``write_table`` made durable the plain way: fsync the file, then its folder."""
    import pyarrow.parquet as pq

    with open(path, "wb") as f:
        pq.write_table(table, f)
        f.flush()
        os.fsync(f.fileno())
    folder = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def test_local_store_against_raw_parquet() -> None:
    import pyarrow.parquet as pq

    from conveyor.plugins.local.store import LocalArtifactStore

    table = _table()
    # /tmp is on the same disk as the project here; the store and the floor share it
    folder = tempfile.mkdtemp(prefix="conveyor-bench-", dir=os.environ.get("BENCH_DIR"))
    try:
        raw_path = os.path.join(folder, "raw.parquet")
        store = LocalArtifactStore(os.path.join(folder, "store"))
        raw_w, raw_r, our_w, our_r = [], [], [], []
        raw_again, our_again = [], []
        for _ in range(RUNS):
            seconds, _ = _timed(lambda: durable_write(table, raw_path))
            raw_w.append(seconds)
            os.sync()  # untimed: both reads start with the data cached and nothing dirty
            seconds, back = _timed(lambda: pq.read_table(raw_path, memory_map=True))
            raw_r.append(seconds)
            assert back.num_rows == ROWS
            del back
            seconds, back = _timed(lambda: pq.read_table(raw_path, memory_map=True))
            raw_again.append(seconds)  # the floor of a second read: pages already cached
            del back
            size = os.path.getsize(raw_path)
            os.unlink(raw_path)

            seconds, info = _timed(lambda: store.put_table("bench/table.parquet", table))
            our_w.append(seconds)
            os.sync()
            seconds, back = _timed(lambda: store.get_table("bench/table.parquet"))
            our_r.append(seconds)
            assert back.num_rows == ROWS
            del back
            # the same unchanged blob again: its file identity was recorded by the first
            # read, so it is not hashed again (verify = "changed", docs/artifacts.md)
            seconds, back = _timed(lambda: store.get_table("bench/table.parquet"))
            our_again.append(seconds)
            assert back.num_rows == ROWS
            del back
            store.delete("bench/table.parquet")
            store.gc(dry_run=False, grace=timedelta(0))

        med = statistics.median
        raw_total = med(w + r for w, r in zip(raw_w, raw_r, strict=True))
        our_total = med(w + r for w, r in zip(our_w, our_r, strict=True))
        ratio = our_total / raw_total
        print(
            f"\ntable: {ROWS:,} rows x {COLUMNS} float64, Parquet {size / 1e9:.2f} GB "
            f"(store: {info.size / 1e9:.2f} GB), medians of {RUNS}"
        )
        print(
            f"pyarrow (fsync'd write, mmap read)  write {med(raw_w):6.2f} s  "
            f"read {med(raw_r):6.2f} s  total {raw_total:6.2f} s"
        )
        print(
            f"local store                         write {med(our_w):6.2f} s  "
            f"read {med(our_r):6.2f} s  total {our_total:6.2f} s"
        )
        print(
            f"write + read {ratio:.2f}x the floor (goal <= {GOAL}x: "
            f"{'met' if ratio <= GOAL else 'NOT MET'}); write alone "
            f"{med(our_w) / med(raw_w):.2f}x, read alone {med(our_r) / med(raw_r):.2f}x"
        )
        print(
            f"second read of the unchanged table: pyarrow {med(raw_again):.2f} s, store "
            f"{med(our_again):.2f} s (not hashed again): {med(our_again) / med(raw_again):.2f}x"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
