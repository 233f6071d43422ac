"""Table schemas, SQL literals and vector conversions (protodb.bank.schema)."""

import numpy as np
import pyarrow as pa
import pytest

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
