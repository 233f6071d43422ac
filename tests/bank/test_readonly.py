"""The quick read-only reader (protodb.bank.readonly): the same rows as the Bank, at the latest
and at every bank version; None, so the Bank opens, wherever it does not apply."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pytest
from bank_writer import EXTRACTOR, write_class

import protodb
from protodb.bank.readonly import BankReader, open_reader
from protodb.bank.schema import SCHEMA_VERSION, prototype_table_name, table_schema
from protodb.bank.store import open_bank
from protodb.bank.vocab import get_vocab, list_vocabs
from protodb.errors import BankError, NotFoundError


def _set_schema_version(uri: str, value: str) -> None:
    meta = open_bank(uri).table("meta")
    meta.delete("key = 'schema_version'")
    meta.add(pa.table({"key": ["schema_version"], "value": [value]}, schema=table_schema("meta")))


def _same_reads(reader, bank) -> None:
    for name in ("meta", "log", "classes", "sets", "supports", "vocabs"):
        assert reader.read(name).equals(bank.read(name)), name
    assert reader.meta() == bank.meta()
    assert reader.history() == bank.history()
    assert reader.classes().equals(bank.classes())
    assert reader.sets("grass").equals(bank.sets("grass"))
    assert list_vocabs(reader) == list_vocabs(bank)


def test_reads_equal_the_bank_at_the_latest_and_every_version(grown_bank):
    uri = str(grown_bank.path)
    reader = open_reader(uri)
    assert isinstance(reader, BankReader) and reader.at is None
    _same_reads(reader, open_bank(uri, create=False))
    assert get_vocab(reader, "v1") == get_vocab(open_bank(uri, create=False), "v1")
    n = len(reader.history())
    assert n == 5
    for version in range(1, n + 1):
        at = open_reader(uri, at=version)
        bank = open_bank(uri, create=False, at=version)
        assert at.at == bank.at == version
        _same_reads(at, bank)
        cols = ["class_key", "seed"]
        assert at.read("sets", "seed = 1", columns=cols).equals(
            bank.read("sets", "seed = 1", columns=cols)
        )


def test_a_table_made_after_the_version_read_is_empty(tmp_path):
    uri = str(tmp_path / "bank")
    bank = open_bank(uri)
    bank.log("first", {})
    write_class(bank, 1)  # makes the prototype table and logs
    table = prototype_table_name(EXTRACTOR)
    early, late = open_reader(uri, at=1), open_reader(uri, at=2)
    assert early.read(table).equals(open_bank(uri, create=False, at=1).read(table))
    assert early.read(table).num_rows == 0 and late.read(table).num_rows > 0
    assert early.read(table, columns=["class_key"]).schema.names == ["class_key"]


def test_sees_commits_made_after_it_opened(tmp_path):
    uri = str(tmp_path / "bank")
    bank = open_bank(uri)
    reader = open_reader(uri)
    assert reader.classes().num_rows == 0
    bank.upsert_class("grass", "grass")
    bank.log("op", {})
    assert reader.classes().column("class_key").to_pylist() == ["grass"]
    assert [e.op for e in reader.history()] == ["op"]


def test_missing_bank_and_version_raise_what_the_bank_raises(tmp_path, tiny_bank):
    for uri in (str(tmp_path / "nowhere"), str(tmp_path), "file://" + str(tmp_path / "x")):
        with pytest.raises(NotFoundError) as fast:
            open_reader(uri)
        with pytest.raises(NotFoundError) as full:
            open_bank(uri, create=False)
        assert str(fast.value) == str(full.value)
    uri = str(tiny_bank.path)
    with pytest.raises(NotFoundError) as fast:
        open_reader(uri, at=9)
    with pytest.raises(NotFoundError) as full:
        open_bank(uri, create=False, at=9)
    assert str(fast.value) == str(full.value) and "versions 1 to 3" in str(fast.value)


def test_file_uri_reads_the_directory(tiny_bank):
    reader = open_reader("file://" + str(tiny_bank.path))
    assert reader is not None and reader.classes().num_rows == 2


@pytest.mark.parametrize("uri", ["s3://bucket/bank", "memory://bank", "gs://b/x"])
def test_object_stores_are_left_to_the_bank(uri):
    assert open_reader(uri) is None


def test_other_schema_versions_are_left_to_the_bank(tmp_path):
    uri = str(tmp_path / "bank")
    write_class(open_bank(uri), 1)
    _set_schema_version(uri, str(SCHEMA_VERSION + 1))
    assert open_reader(uri) is None
    with pytest.raises(BankError, match="upgrade protodb"):  # what the Bank says, as before
        protodb.connect(uri).classes()


def test_a_schema_1_bank_is_migrated_by_a_listing(tmp_path):
    """A listing of a bank to migrate goes through the Bank, which migrates it in place."""
    uri = str(tmp_path / "bank")
    bank = open_bank(uri)
    write_class(bank, 1)
    table = prototype_table_name(EXTRACTOR)
    bank.table("sets").drop_columns(["write_id", "row_start", "row_count"])
    bank.table("cells").drop_columns(["write_id"])
    bank.table(table).drop_columns(["write_id"])
    _set_schema_version(uri, "1")
    assert open_reader(uri) is None
    db = protodb.connect(uri)
    assert [c.name for c in db.classes()] == ["class 1"]
    assert db._bank is not None  # read through the Bank
    reader = open_reader(uri)
    assert reader is not None and reader.meta()["schema_version"] == str(SCHEMA_VERSION)
    assert reader.history()[-1].op == "migrate"


def test_unreadable_table_is_left_to_the_bank(tmp_path):
    uri = str(tmp_path / "bank")
    write_class(open_bank(uri), 1)
    for manifest in (tmp_path / "bank" / "meta.lance" / "_versions").glob("*.manifest"):
        manifest.write_bytes(b"garbage\n")
    assert open_reader(uri) is None


def test_listings_never_import_lancedb(tiny_bank):
    code = (
        "import sys, protodb\n"
        f"db = protodb.connect({str(tiny_bank.path)!r})\n"
        "db.classes(); db.show('grass'); db.history(); db.vocabs(); db.vocab('v1')\n"
        "assert db._bank is None\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lancedb', 'torch')))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"
