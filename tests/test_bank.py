import numpy as np
import pyarrow as pa
import pytest
from bank_writer import EXTRACTOR, GENERATOR, n_rows, vectors, write_class

from protodb.bank.schema import (
    CORE_TABLES,
    SCHEMA_VERSION,
    SetKey,
    arrow_to_vectors,
    now,
    prototype_table_name,
    schema_spec,
    sql_str,
    table_schema,
    vectors_to_arrow,
)
from protodb.bank.store import Bank, open_bank
from protodb.errors import BankError, NotFoundError, ProtodbError


@pytest.fixture
def bank(tmp_path) -> Bank:
    return open_bank(str(tmp_path / "bank"))


def _set_schema_version(bank: Bank, value: str) -> None:
    meta = bank.table("meta")
    meta.delete("key = 'schema_version'")
    meta.add(pa.table({"key": ["schema_version"], "value": [value]}, schema=table_schema("meta")))


# --------------------------------------------------------------------------- schema


def test_schema_spec_covers_core_tables():
    tables = schema_spec()["tables"]
    assert set(CORE_TABLES) <= set(tables)
    assert "prototypes*" in tables
    assert schema_spec()["schema_version"] == SCHEMA_VERSION


def test_table_schema_types():
    s = table_schema("prototypes__x", dim=8, vector_dtype="float32")
    assert s.field("vector").type == pa.list_(pa.float32(), 8)
    assert table_schema("prototypes__x", dim=4).field("vector").type == pa.list_(pa.float16(), 4)
    assert s.metadata[b"protodb.schema_version"] == str(SCHEMA_VERSION).encode()
    assert table_schema("log").field("created_at").type == pa.timestamp("us", tz="UTC")
    with pytest.raises(ValueError, match="dimension"):
        table_schema("prototypes__x")


def test_names_and_sql_literals():
    assert prototype_table_name("dinov2-0123abcd") == "prototypes__dinov2_0123abcd"
    assert sql_str("o'neil") == "'o''neil'"
    key = SetKey("o'neil", "sd-1", 3, "dinov2-2")
    assert key.where() == (
        "class_key = 'o''neil' AND generator_id = 'sd-1' AND seed = 3 AND extractor_id = 'dinov2-2'"
    )


# --------------------------------------------------------------------------- open / create


def test_new_bank_has_core_tables_and_meta(bank):
    assert set(CORE_TABLES) <= set(bank.table_names())
    meta = dict(zip(*bank.read("meta").to_pydict().values(), strict=True))
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert {"created_at", "created_by", "protodb_version"} <= set(meta)
    assert bank.history() == []
    assert set(bank.versions()) == set(CORE_TABLES)


def test_open_missing_bank_without_create(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(NotFoundError, match="no protodb bank at") as err:
        open_bank(missing, create=False)
    assert missing in str(err.value)
    assert isinstance(err.value, ProtodbError)


def test_reopen_existing_bank(tmp_path):
    uri = str(tmp_path / "bank")
    first = open_bank(uri)
    first.upsert_class("grass", "grass")
    again = open_bank(uri, create=False)
    assert again.classes().column("class_key").to_pylist() == ["grass"]
    assert again.read("meta").num_rows == 4  # reopening does not re-initialise


def test_newer_schema_version_is_refused(tmp_path):
    uri = str(tmp_path / "bank")
    _set_schema_version(open_bank(uri), str(SCHEMA_VERSION + 1))
    with pytest.raises(BankError, match="upgrade protodb") as err:
        open_bank(uri)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(err.value)
    with pytest.raises(BankError, match="upgrade"):
        open_bank(uri, create=False)


def test_older_schema_version_is_refused(tmp_path):
    uri = str(tmp_path / "bank")
    _set_schema_version(open_bank(uri), "0")
    with pytest.raises(BankError, match="re-create the bank"):
        open_bank(uri)


def test_unknown_table(bank):
    with pytest.raises(NotFoundError, match="no table 'nope'"):
        bank.table("nope")


# --------------------------------------------------------------------------- writes / versions


def test_upsert_class_is_idempotent_and_quotes(bank):
    bank.upsert_class("o'neil", "O'Neil")
    bank.upsert_class("o'neil", "O'Neil")
    rows = bank.classes().to_pylist()
    assert len(rows) == 1
    assert rows[0]["name"] == "O'Neil"
    assert (rows[0]["kind"], rows[0]["kind_source"]) == ("unknown", "none")


def test_empty_append_makes_no_version(bank):
    before = bank.versions()
    bank.append("classes", pa.table({"class_key": pa.array([], pa.string())}))
    assert bank.versions() == before


def test_history_versions_increase(bank):
    e1 = bank.log("first", {"a": 1})
    bank.upsert_class("grass", "grass")
    e2 = bank.log("second", {"b": [1, 2]})
    e3 = bank.log("third", {})
    hist = bank.history()
    assert [e.version for e in hist] == [1, 2, 3]
    assert [e.op for e in hist] == ["first", "second", "third"]
    assert hist[1].detail == {"b": [1, 2]}
    assert (e1.version, e2.version, e3.version) == (1, 2, 3)
    assert hist[1].versions["classes"] > hist[0].versions["classes"]
    assert hist[2].versions["log"] > hist[1].versions["log"]
    assert hist[0].created_at <= hist[1].created_at <= hist[2].created_at
    assert hist[0].versions == e1.versions


def test_read_time_travel(bank):
    bank.upsert_class("grass", "grass")
    v1 = bank.versions()["classes"]
    bank.upsert_class("sky", "sky")
    v2 = bank.versions()["classes"]
    assert v2 > v1
    assert bank.read("classes", version=v1).column("class_key").to_pylist() == ["grass"]
    assert sorted(bank.read("classes").column("class_key").to_pylist()) == ["grass", "sky"]
    # a filtered read at a version, and the handle is back at the latest afterwards
    assert bank.read("classes", "class_key = 'sky'", version=v1).num_rows == 0
    assert bank.read("classes", "class_key = 'sky'", version=v2).num_rows == 1
    assert bank.table("classes").version == v2


def test_handles_see_commits_of_other_handles(tmp_path):
    uri = str(tmp_path / "bank")
    a = open_bank(uri)
    b = open_bank(uri)
    assert b.classes().num_rows == 0
    a.upsert_class("grass", "grass")
    assert b.classes().column("class_key").to_pylist() == ["grass"]
    b.log("op", {})
    assert [e.op for e in a.history()] == ["op"]


def test_ensure_prototype_table(bank):
    name = bank.ensure_prototype_table("dinov2-abc", 8, "float32")
    assert name == "prototypes__dinov2_abc"
    assert bank.ensure_prototype_table("dinov2-abc", 8, "float32") == name
    assert bank.table(name).schema.field("vector").type == pa.list_(pa.float32(), 8)
    assert bank.sets().num_rows == 0
    assert not bank.has_set(SetKey("grass", "g", 0, "dinov2-abc"))


# --------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_vectors_round_trip(dtype):
    v = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    arr = vectors_to_arrow(v, dtype)
    assert arr.type.list_size == 3 and len(arr) == 5
    back = arrow_to_vectors(pa.chunked_array([arr[:2], arr[2:]]), 3)
    assert back.dtype == np.float32 and back.shape == (5, 3)
    if dtype == "float32":
        np.testing.assert_array_equal(back, v)
    else:
        np.testing.assert_array_equal(back, v.astype(np.float16).astype(np.float32))


def test_vectors_empty():
    arr = vectors_to_arrow(np.zeros((0, 4), np.float32), "float16")
    assert len(arr) == 0
    assert arrow_to_vectors(pa.chunked_array([], arr.type), 4).shape == (0, 4)


# --------------------------------------------------------------------------- session bank


def test_session_bank_history(tiny_bank):
    bank = open_bank(str(tiny_bank.path), create=False)
    hist = bank.history()
    assert [e.op for e in hist] == ["add", "add", "vocab create"]
    assert [e.version for e in hist] == [1, 2, 3]
    assert hist[0].detail["class"] == "red apple" and hist[1].detail["class"] == "grass"
    assert hist[1].versions["sets"] > hist[0].versions["sets"]
    assert bank.read("sets", version=hist[0].versions["sets"]).num_rows == 1
    assert bank.read("sets").num_rows == 2


# --------------------------------------------------------------------------- keys, sets, loads


def test_insert_new_dedupes_batch_and_existing(bank):
    rows = pa.table({"class_key": ["a", "b", "a"], "name": ["A", "B", "A2"]})
    rows = rows.append_column("kind", pa.array(["unknown"] * 3))
    rows = rows.append_column("kind_source", pa.array(["none"] * 3))
    rows = rows.append_column("created_at", pa.array([now()] * 3, pa.timestamp("us", tz="UTC")))
    assert bank.insert_new("classes", rows, ["class_key"]) == 2
    assert bank.insert_new("classes", rows, ["class_key"]) == 0
    got = bank.read("classes")
    assert sorted(got.column("class_key").to_pylist()) == ["a", "b"]
    assert "A2" not in got.column("name").to_pylist()  # first in the batch wins


def test_upsert_class_fills_a_missing_kind_once(bank):
    bank.upsert_class("grass", "grass")
    bank.upsert_class("grass", "grass", "stuff", "lexicon")
    bank.upsert_class("grass", "grass", "thing", "user")  # a known kind is kept
    (row,) = bank.classes().to_pylist()
    assert (row["kind"], row["kind_source"]) == ("stuff", "lexicon")


def test_write_set_is_visible_whole_and_once(bank):
    assert write_class(bank, 3) is True
    assert write_class(bank, 3) is False  # the same key again writes nothing
    (rec,) = bank.read("sets").to_pylist()
    table = prototype_table_name(EXTRACTOR)
    assert rec["row_start"] == 0 and rec["row_count"] == n_rows(3)
    assert bank.read(table).num_rows == n_rows(3)
    vecs, meta = bank.load_prototypes(table, EXTRACTOR, [("class 3", GENERATOR, 0)])
    assert vecs.dtype == np.float16
    np.testing.assert_array_equal(vecs, vectors(3).astype(np.float16))
    assert meta.column_names == [
        "class_key", "generator_id", "seed", "extractor_id",
        "polarity", "level", "part", "support", "weight",
    ]  # fmt: skip
    with pytest.raises(NotFoundError, match="no completed ext-1 prototype set"):
        bank.load_prototypes(table, EXTRACTOR, [("class 4", GENERATOR, 0)])


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


def test_open_migrates_schema_1(tmp_path):
    uri = str(tmp_path / "bank")
    bank = open_bank(uri)
    write_class(bank, 1)
    table = prototype_table_name(EXTRACTOR)
    bank.table("sets").drop_columns(["write_id", "row_start", "row_count"])
    bank.table("cells").drop_columns(["write_id"])
    bank.table(table).drop_columns(["write_id"])
    _set_schema_version(bank, "1")
    migrated = open_bank(uri)
    assert migrated.meta()["schema_version"] == str(SCHEMA_VERSION)
    assert migrated.history()[-1].op == "migrate"
    (rec,) = migrated.read("sets").to_pylist()
    assert (rec["write_id"], rec["row_start"]) == (f"legacy:class 1:{GENERATOR}:0:{EXTRACTOR}", -1)
    rows = migrated.read(table)
    assert set(rows.column("write_id").to_pylist()) == {rec["write_id"]}
    vecs, _ = migrated.load_prototypes(table, EXTRACTOR, [("class 1", GENERATOR, 0)])
    np.testing.assert_array_equal(vecs, vectors(1).astype(np.float16))


def test_interrupted_creation_is_completed_on_open(tmp_path):
    uri = str(tmp_path / "bank")
    import lancedb

    db = lancedb.connect(uri)
    db.create_table("classes", schema=table_schema("classes"))  # killed before meta
    bank = open_bank(uri)
    assert set(CORE_TABLES) <= set(bank.table_names())
    assert bank.meta()["schema_version"] == str(SCHEMA_VERSION)


def test_vocab_pins_are_lance_tags(tiny_bank):
    bank = open_bank(str(tiny_bank.path), create=False)
    pins = tiny_bank.vocab.versions
    for table in ("sets", "cells", "supports"):
        assert bank.tags(table) == {"vocab.v1": pins[table]}


def test_take_offsets_by_row_address_equals_take(tmp_path):
    """The fast take through row addresses returns the rows ``take`` by offset returns, over
    several fragments, and falls back to offsets once a fragment has deleted rows."""
    import lance

    from protodb.bank.reads import _fragment_layout, _take_offsets

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
