"""Opening, creating and migrating a bank; tables and handles (protodb.bank.store)."""

import numpy as np
import pyarrow as pa
import pytest
from bank_writer import EXTRACTOR, GENERATOR, vectors, write_class

from protodb.bank.schema import (
    CORE_TABLES,
    SCHEMA_VERSION,
    SetKey,
    prototype_table_name,
    table_schema,
)
from protodb.bank.store import Bank, open_bank
from protodb.errors import BankError, NotFoundError, ProtodbError


def _set_schema_version(bank: Bank, value: str) -> None:
    meta = bank.table("meta")
    meta.delete("key = 'schema_version'")
    meta.add(pa.table({"key": ["schema_version"], "value": [value]}, schema=table_schema("meta")))


def test_new_bank_has_core_tables_and_meta(any_bank):
    bank = any_bank  # local and S3
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


def test_empty_append_makes_no_version(bank):
    before = bank.versions()
    bank.append("classes", pa.table({"class_key": pa.array([], pa.string())}))
    assert bank.versions() == before


def test_handles_see_commits_of_other_handles(tmp_path):
    uri = str(tmp_path / "bank")
    a = open_bank(uri)
    b = open_bank(uri)
    assert b.classes().num_rows == 0
    a.upsert_class("grass", "grass")
    assert b.classes().column("class_key").to_pylist() == ["grass"]
    b.log("op", {})
    assert [e.op for e in a.history()] == ["op"]


def test_ensure_prototype_table(any_bank):
    bank = any_bank  # local and S3
    name = bank.ensure_prototype_table("dinov2-abc", 8, "float32")
    assert name == "prototypes__dinov2_abc"
    assert bank.ensure_prototype_table("dinov2-abc", 8, "float32") == name
    assert bank.table(name).schema.field("vector").type == pa.list_(pa.float32(), 8)
    assert bank.sets().num_rows == 0
    assert not bank.has_set(SetKey("grass", "g", 0, "dinov2-abc", "otsu-0123456789ab"))


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
