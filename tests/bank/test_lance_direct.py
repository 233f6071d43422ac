"""Direct reads of vector rows from Lance data files (protodb.bank.lance_direct)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from protodb.bank.lance_direct import VectorReader

DIM = 24


def _vectors(n: int, start: int, dtype) -> np.ndarray:
    rng = np.random.default_rng(start)
    return rng.standard_normal((n, DIM)).astype(dtype)


def _write(uri: str, sizes: list[int], dtype, version: str = "2.0", page_bytes: int = 4096):
    """A dataset of ``len(sizes)`` fragments with a float vector column split into many small
    pages; returns the dataset and all its vectors in row order."""
    import lance

    parts = []
    start = 0
    for i, n in enumerate(sizes):
        vecs = _vectors(n, start, dtype)
        parts.append(vecs)
        values = pa.array(vecs.reshape(-1))
        data = pa.table(
            {
                "i": np.arange(start, start + n, dtype=np.int64),
                "vector": pa.FixedSizeListArray.from_arrays(values, DIM),
                "name": [f"row {k}" for k in range(start, start + n)],
            }
        )
        lance.write_dataset(
            data,
            uri,
            mode="append" if i else "create",
            data_storage_version=version,
            max_page_bytes=page_bytes,
        )
        start += n
    return lance.dataset(uri), np.concatenate(parts)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_read_equals_lance_take_across_pages_and_fragments(tmp_path, dtype):
    ds, every = _write(str(tmp_path / "t.lance"), [150, 40, 300], dtype)
    reader = VectorReader()
    starts = np.array([140, 0, 185, 460, 37, 190], np.int64)  # out of order
    counts = np.array([60, 5, 200, 30, 0, 1], np.int64)  # spans fragments and pages
    got = reader.read(ds, "vector", starts, counts)
    idx = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, counts, strict=True)])
    lance_rows = ds.take(pa.array(idx), columns=["vector"]).column("vector").combine_chunks()
    want = lance_rows.flatten().to_numpy().reshape(-1, DIM)
    assert got is not None and got.dtype == dtype and got.shape == (len(idx), DIM)
    assert got.tobytes() == want.tobytes() == every[idx].tobytes()
    pages = [p for p in reader._pages.values() if p is not None]
    assert len(pages) == 3 and sum(len(p.pos) for p in pages) > 3  # several pages per file


def test_ranges_out_of_bounds_give_none(tmp_path):
    ds, _ = _write(str(tmp_path / "t.lance"), [10], np.float16)
    reader = VectorReader()
    assert reader.read(ds, "vector", np.array([5]), np.array([6])) is None
    assert reader.read(ds, "vector", np.array([-1]), np.array([2])) is None
    assert reader.read(ds, "vector", np.array([5]), np.array([5])) is not None


def test_layouts_it_does_not_know_give_none(tmp_path):
    reader = VectorReader()
    newer, _ = _write(str(tmp_path / "v21.lance"), [20], np.float16, version="2.1")
    assert reader.read(newer, "vector", np.array([0]), np.array([3])) is None
    ds, _ = _write(str(tmp_path / "t.lance"), [20, 20], np.float16)
    assert reader.read(ds, "name", np.array([0]), np.array([3])) is None  # not a vector column
    ds.delete("i = 3")
    deleted = ds.checkout_version(ds.latest_version)
    assert reader.read(deleted, "vector", np.array([0]), np.array([3])) is None
