"""Table schemas, SQL literals and vector conversions (protodb.bank.schema), and the migration
of a schema-2 bank (a binary fixture made by the code before recipe ids) to recipe ids."""

import gzip
import logging
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import protodb
from protodb.bank.schema import (
    CORE_TABLES,
    SCHEMA_VERSION,
    SetKey,
    arrow_to_vectors,
    prototype_table_name,
    schema_spec,
    sql_str,
    table_schema,
    vectors_to_arrow,
)
from protodb.bank.store import open_bank
from protodb.errors import NeedsMigrationError


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
    key = SetKey("o'neil", "sd-1", 3, "dinov2-2", "otsu-0123456789ab")
    assert key.where() == (
        "class_key = 'o''neil' AND generator_id = 'sd-1' AND seed = 3 AND extractor_id = 'dinov2-2'"
    )


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


# ------------------------------------------------------------------ schema 2 -> 3 (recipe ids)

DATA = Path(__file__).parent / "data"


def _old_bank(tmp_path: Path) -> Path:
    """The schema-2 fixture bank (tests/bank/data/README.md), unpacked."""
    with tarfile.open(DATA / "schema2_bank.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "bank"


def test_a_schema_2_bank_migrates_on_open_with_a_logged_line(tmp_path, caplog):
    from protodb.bank.readonly import open_reader
    from protodb.synthesis.recipe import make_recipe

    path = _old_bank(tmp_path)
    with pytest.raises(NeedsMigrationError, match="schema version 2"):
        open_bank(str(path), create=False, migrate=False)
    assert open_reader(str(path)) is None  # the quick reader leaves an old bank to the Bank
    with caplog.at_level(logging.WARNING, logger="protodb.bank"):
        bank = open_bank(str(path), create=False)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "migrated bank" in line and "from schema 2 to 3" in line
    assert bank.meta()["schema_version"] == "3"
    assert [e.op for e in bank.history()] == ["add", "add", "vocab create", "migrate"]
    plain = make_recipe("otsu", 2)
    sets = bank.read("sets").to_pylist()
    assert {(s["class_key"], s["recipe_id"]) for s in sets} == {
        ("red apple", plain.id),
        ("grass", plain.id),
    }
    assert {s["recipe"] for s in sets} == {plain.to_json()}
    # versions from before the migration read with the same recipe ids, in the Bank and the
    # quick reader alike
    for reader in (open_bank(str(path), create=False, at=2), open_reader(str(path), at=2)):
        old = reader.read("sets", columns=["class_key", "recipe_id"]).to_pylist()
        assert sorted(old, key=lambda r: r["class_key"]) == [
            {"class_key": "grass", "recipe_id": plain.id},
            {"class_key": "red apple", "recipe_id": plain.id},
        ]
        assert reader.find_set(SetKey.of(sets[0])) is not None
    assert open_bank(str(path), create=False).history()[-1].op == "migrate"  # once


def test_a_migrated_bank_segments_as_before_and_grows(tmp_path):
    from conftest import make_image

    path = _old_bank(tmp_path)
    db = protodb.connect(path, profile="tiny", device="cpu")
    labels = db.vocab("v1").segment(make_image()).labels
    np.testing.assert_array_equal(labels, np.load(DATA / "schema2_v1_labels.npy"))
    (v1,) = db.vocabs()
    assert [c.recipe_id for c in v1.classes] == ["", ""]  # pinned before recipes: as it was
    info = db.show("red apple")
    assert [s["recipe"]["mask_source"] for s in info.sets] == ["otsu"]
    # the add that was a silent no-op at schema 2 now builds a second set
    (res,) = db.add(["red apple"], n=2, mask_source="maskcut", extractors=("dinov2",),
                    progress=False)  # fmt: skip
    assert res.status == "added" and res.reused == 2 and res.recipe_id.startswith("maskcut-")
    assert len(db.show("red apple").sets) == 2
    v2 = db.create_vocab("v2", ["red apple", "grass"])
    assert [c.recipe_id for c in v2.classes] == [info.sets[0]["recipe_id"]] * 2
    v3 = db.create_vocab("v3", ["red apple"], recipes=[res.recipe_id])
    assert v3.classes[0].recipe_id == res.recipe_id
    db.vocab("v3").segment(make_image())


def test_restore_to_a_version_from_before_the_migration(tmp_path):
    path = _old_bank(tmp_path)
    db = protodb.connect(path, profile="tiny", device="cpu")
    db.add(["red apple"], n=2, mask_source="maskcut", extractors=("dinov2",), progress=False)
    assert db.bank.sets("red apple").num_rows == 2
    db.restore(2)  # before the vocabulary and the migration
    bank = open_bank(str(path), create=False)
    assert "recipe_id" in bank.table("sets").schema.names  # put back, filled
    assert {s["recipe_id"] for s in bank.read("sets").to_pylist()} == {make_recipe_id("otsu", 2)}
    assert bank.read("vocabs").num_rows == 0
    db = protodb.connect(path, profile="tiny", device="cpu")
    db.add(["red apple"], n=2, mask_source="maskcut", extractors=("dinov2",), progress=False)
    assert db.create_vocab("again", ["red apple", "grass"]).classes[0].recipe_id.startswith("otsu-")


def test_an_export_made_before_recipe_ids_imports(tmp_path):
    src = tmp_path / "old.protodb"
    src.write_bytes(gzip.decompress((DATA / "schema2_v1.protodb.gz").read_bytes()))
    db = protodb.connect(tmp_path / "bank", profile="tiny", device="cpu")
    res = db.import_(src)
    assert res.sets == 2 and res.vocabs == ["v1"]
    sets = db.bank.read("sets").to_pylist()
    assert {s["recipe_id"] for s in sets} == {make_recipe_id("otsu", 2)}


def make_recipe_id(source: str, n: int) -> str:
    from protodb.synthesis.recipe import make_recipe

    return make_recipe(source, n).id


def test_a_schema_2_bank_that_cannot_be_written_is_read_as_it_is(tmp_path):
    """As on a read-only mount (a lock file this process cannot open; tests run as root):
    listings and segmentation work without migrating, a write is one line."""
    import subprocess
    import sys

    from conftest import make_image

    path = _old_bank(tmp_path)
    for lock in ("_protodb_commit.lock", "_protodb_writers.lock"):
        (path / lock).unlink(missing_ok=True)
        (path / lock).mkdir()
    files = sorted(str(p) for p in path.rglob("*"))
    cli = [sys.executable, "-c", "from protodb.cli.app import main; main()", "--bank", str(path)]
    shown = subprocess.run([*cli, "show", "grass"], capture_output=True, text=True)
    assert shown.returncode == 0 and f"recipe {make_recipe_id('otsu', 2)}" in shown.stdout
    assert shown.stderr == ""
    made = subprocess.run([*cli, "vocab", "create", "v2", "grass"], capture_output=True, text=True)
    assert made.returncode != 0 and "read-only" in made.stderr
    assert made.stderr.strip().count("\n") == 0
    db = protodb.connect(path, profile="tiny", device="cpu")
    labels = db.vocab("v1").segment(make_image()).labels
    np.testing.assert_array_equal(labels, np.load(DATA / "schema2_v1_labels.npy"))
    assert open_bank(str(path), create=False).meta()["schema_version"] == "2"
    assert sorted(str(p) for p in path.rglob("*")) == files
