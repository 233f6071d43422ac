"""Prototype loads: ranges, row addresses, direct reads and their checks (protodb.bank.reads)."""

import numpy as np
import pyarrow as pa
from bank_writer import EXTRACTOR, GENERATOR, vectors, write_class

from protodb.bank.schema import (
    prototype_table_name,
)
from protodb.bank.store import Bank


def test_load_prototypes_ignores_orphans_and_stale_ranges(bank):
    for i in range(3):
        write_class(bank, i)
    table = prototype_table_name(EXTRACTOR)
    sets = [(f"class {i}", GENERATOR, 0) for i in (2, 0)]
    want = np.concatenate([vectors(2), vectors(0)]).astype(np.float16)
    fast, fast_meta = bank.load_prototypes(table, EXTRACTOR, sets)
    np.testing.assert_array_equal(fast, want)
    # rows of an attempt that never completed, then a stale range: the filter path answers
    orphan = bank.read(table, "write_id IS NOT NULL").slice(0, 3)
    orphan = orphan.set_column(orphan.schema.get_field_index("write_id"), "write_id",
                               pa.array(["dead"] * 3))  # fmt: skip
    bank.append(table, orphan)
    bank.table("sets").update(where="class_key = 'class 2'", values={"row_start": 1})
    slow, slow_meta = Bank(bank.uri).load_prototypes(table, EXTRACTOR, sets)
    np.testing.assert_array_equal(slow, want)
    assert slow_meta.equals(fast_meta)


def test_take_offsets_by_row_address_equals_take(tmp_path):
    """The fast take through row addresses returns the rows ``take`` by offset returns, over
    several fragments, and falls back to offsets once a fragment has deleted rows."""
    import lance

    from protodb.bank.loads import _fragment_layout, _take_offsets

    uri = str(tmp_path / "t.lance")
    for start in (0, 7, 20):  # three fragments of 7, 13 and 5 rows
        n = {0: 7, 7: 13, 20: 5}[start]
        data = pa.table({"i": np.arange(start, start + n, dtype=np.int64)})
        lance.write_dataset(data, uri, mode="append" if start else "create")
    ds = lance.dataset(uri)
    assert _fragment_layout(ds) is not None
    idx = np.array([0, 6, 7, 19, 20, 24, 3, 8], dtype=np.int64)
    assert _take_offsets(ds, idx, ["i"]).column("i").to_pylist() == idx.tolist()
    ds.delete("i = 9")
    ds = lance.dataset(uri)
    assert _fragment_layout(ds) is None  # offsets now skip a row: use take by offset
    want = ds.take(pa.array(idx), columns=["i"]).column("i").to_pylist()
    assert _take_offsets(ds, idx, ["i"]).column("i").to_pylist() == want
    assert 9 not in want and want[3] == 20


def test_load_prototypes_reads_vectors_straight_from_the_data_files(bank):
    """The fast load reads the vector bytes from the Lance files (protodb.bank.lance_direct) and
    returns exactly what Lance's own take returns, with the same metadata."""
    for i in range(5):
        write_class(bank, i)
    table = prototype_table_name(EXTRACTOR)
    sets = [(f"class {i}", GENERATOR, 0) for i in (3, 1, 4, 0)]
    fast, meta = bank.load_prototypes(table, EXTRACTOR, sets)
    assert bank._vector_reader is not None and any(bank._vector_reader._pages.values())
    lance_only = Bank(bank.uri)
    lance_only._vector_reader = None
    slow, slow_meta = lance_only.load_prototypes(table, EXTRACTOR, sets)
    assert fast.dtype == slow.dtype == np.float16 and fast.tobytes() == slow.tobytes()
    assert meta.equals(slow_meta)
    want = np.concatenate([vectors(i) for i in (3, 1, 4, 0)]).astype(np.float16)
    np.testing.assert_array_equal(fast, want)


def test_a_misread_of_the_data_files_is_caught_and_lance_reads_instead(bank):
    """A direct read whose edge rows differ from Lance's read of them is thrown away, and the
    bank stops reading files directly."""
    from protodb.bank.lance_direct import VectorReader

    class Misreading(VectorReader):
        def read(self, ds, column, starts, counts):
            got = super().read(ds, column, starts, counts)
            return None if got is None else np.zeros_like(got)

    for i in range(3):
        write_class(bank, i)
    table = prototype_table_name(EXTRACTOR)
    bank._vector_reader = Misreading()
    got, _ = bank.load_prototypes(table, EXTRACTOR, [("class 2", GENERATOR, 0)])
    np.testing.assert_array_equal(got, vectors(2).astype(np.float16))
    assert bank._vector_reader is None
