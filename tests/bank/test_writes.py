"""Keyed writes: classes, dedupe, whole-or-nothing prototype sets (protodb.bank.writes)."""

import numpy as np
import pyarrow as pa
import pytest
from bank_writer import EXTRACTOR, GENERATOR, n_rows, vectors, write_class

from protodb.bank.schema import (
    now,
    prototype_table_name,
)
from protodb.errors import NotFoundError


def test_upsert_class_is_idempotent_and_quotes(any_bank):
    bank = any_bank  # local and S3
    bank.upsert_class("o'neil", "O'Neil")
    bank.upsert_class("o'neil", "O'Neil")
    rows = bank.classes().to_pylist()
    assert len(rows) == 1
    assert rows[0]["name"] == "O'Neil"
    assert (rows[0]["kind"], rows[0]["kind_source"]) == ("unknown", "none")


def test_insert_new_dedupes_batch_and_existing(any_bank):
    bank = any_bank  # local and S3
    rows = pa.table({"class_key": ["a", "b", "a"], "name": ["A", "B", "A2"]})
    rows = rows.append_column("kind", pa.array(["unknown"] * 3))
    rows = rows.append_column("kind_source", pa.array(["none"] * 3))
    rows = rows.append_column("created_at", pa.array([now()] * 3, pa.timestamp("us", tz="UTC")))
    assert bank.insert_new("classes", rows, ["class_key"]) == 2
    assert bank.insert_new("classes", rows, ["class_key"]) == 0
    got = bank.read("classes")
    assert sorted(got.column("class_key").to_pylist()) == ["a", "b"]
    assert "A2" not in got.column("name").to_pylist()  # first in the batch wins


def test_upsert_class_fills_a_missing_kind_once(any_bank):
    bank = any_bank  # local and S3
    bank.upsert_class("grass", "grass")
    bank.upsert_class("grass", "grass", "stuff", "lexicon")
    bank.upsert_class("grass", "grass", "thing", "user")  # a known kind is kept
    (row,) = bank.classes().to_pylist()
    assert (row["kind"], row["kind_source"]) == ("stuff", "lexicon")


def test_write_set_is_visible_whole_and_once(any_bank):
    bank = any_bank  # local and S3
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
