"""The bank's row encodings (protodb.bank.rows) and its masks read (protodb.bank.reads)."""

from dataclasses import dataclass

import numpy as np
import pytest

from protodb.bank import rows
from protodb.bank.readonly import open_reader
from protodb.bank.recipe import legacy_recipe
from protodb.bank.schema import SetKey, prototype_table_name, table_schema
from protodb.images import decode_png

RECIPE = legacy_recipe("otsu", 2)
KEY = SetKey("red apple", "gen-1", 3, "ext-1", RECIPE.id)


@dataclass
class Support:
    index: int
    image: np.ndarray
    attribution: np.ndarray


def _same_columns(table, schema):
    assert table.schema.names == schema.names
    assert [f.type for f in table.schema] == [f.type for f in schema]


def _masks(n=2, h=6, w=5):
    rng = np.random.default_rng(0)
    return rng.random((n, h, w)) > 0.5, rng.random((n, h, w)) > 0.7


def test_each_encoding_has_its_tables_columns_and_types():
    image = np.full((6, 5, 3), 7, np.uint8)
    sup = rows.supports_table(
        "red apple", "gen-1", 3, [Support(0, image, np.ones((2, 3), np.float32))],
        generator_config="{}", runtime="{}",
    )  # fmt: skip
    _same_columns(sup, table_schema("supports"))
    r = sup.to_pylist()[0]
    assert (r["height"], r["width"], r["attr_h"], r["attr_w"]) == (6, 5, 2, 3)
    assert (decode_png(r["image_png"]) == image).all()
    fg, bg = _masks()
    masks = rows.masks_table(
        "red apple", "gen-1", 3, n=2, mask_source="otsu", indices=[0, 1], fg=fg, bg=bg,
        thresholds=(0.25, 0.5),
    )  # fmt: skip
    _same_columns(masks, table_schema("masks"))
    assert masks["thresholds"].to_pylist() == ["[0.25, 0.5]"] * 2
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    protos = rows.prototypes_table(
        KEY, polarity="fg", level=["class", "instance", "part"], part=[-1, -1, 0],
        support=[-1, 0, -1], weight=[2.0, 1.0, 1.0], vectors=vectors, store_dtype="float32",
    )  # fmt: skip
    full = table_schema(prototype_table_name(KEY.extractor_id), 4, "float32")
    _same_columns(protos, full.remove(full.get_field_index("write_id")))
    with_id = rows.prototypes_table(
        KEY, polarity=["fg", "bg", "bg"], level=["class"] * 3, part=[-1] * 3, support=[-1] * 3,
        weight=[1.0] * 3, vectors=vectors, store_dtype="float32", write_id="w",
    )  # fmt: skip
    _same_columns(with_id, full)
    assert with_id["polarity"].to_pylist() == ["fg", "bg", "bg"]
    cells = rows.cells_table(KEY, polarity="bg", supports=[1], grids=np.zeros((1, 2, 3), int))
    schema = table_schema("cells")
    _same_columns(cells, schema.remove(schema.get_field_index("write_id")))
    assert cells.to_pylist()[0]["cells"] == np.zeros(6, "<i2").tobytes()
    record = rows.set_record(
        KEY, name="red apple", n_supports=2, n=2, n_used=2, n_fg=3, n_bg=0, dim=4,
        mask_source="otsu", thresholds=[0.25, 0.5], generator_config="{}",
        extractor_config="{}", recipe=RECIPE,
    )  # fmt: skip
    done = rows.completed_record(record, write_id="w", row_start=0, prototypes=with_id)
    sets = rows.sets_table([done])
    _same_columns(sets, table_schema("sets"))
    assert sets.to_pylist()[0]["row_count"] == 3 and sets["recipe_id"][0].as_py() == RECIPE.id
    _same_columns(rows.class_table("sky", "sky", "stuff", "user"), table_schema("classes"))
    _same_columns(rows.meta_table({"a": "b"}), table_schema("meta"))


def test_a_set_record_refuses_a_recipe_other_than_its_keys():
    with pytest.raises(ValueError, match="is not the key's"):
        rows.set_record(
            KEY, name="x", n_supports=1, n=1, n_used=1, n_fg=1, n_bg=0, dim=4,
            mask_source="otsu", thresholds=[0.2, 0.5], generator_config="{}",
            extractor_config="{}", recipe=legacy_recipe("maskcut", 2),
        )  # fmt: skip


def test_a_masks_read_returns_what_was_written(bank):
    fg, bg = _masks()
    for n, source in ((2, "otsu"), (2, "maskcut"), (3, "otsu")):
        bank.insert_new(
            "masks",
            rows.masks_table(
                "red apple", "gen-1", 3, n=n, mask_source=source, indices=[0, 1], fg=fg, bg=bg,
                thresholds=(0.25, 0.5),
            ),
            ("class_key", "generator_id", "seed", "n", "mask_source", "index"),
        )  # fmt: skip
    got = sorted(
        bank.masks("red apple", "gen-1", 3, 2, "otsu").to_pylist(), key=lambda r: r["index"]
    )
    assert [(r["index"], r["n"], r["mask_source"]) for r in got] == [(0, 2, "otsu"), (1, 2, "otsu")]
    assert all((decode_png(r["fg_png"], "1") == fg[i]).all() for i, r in enumerate(got))
    assert all((decode_png(r["bg_png"], "1") == bg[i]).all() for i, r in enumerate(got))
    assert bank.masks("red apple", "gen-1", 4, 2, "otsu").num_rows == 0
    reader = open_reader(bank.uri)  # the read-only view reads the same rows
    assert reader.masks("red apple", "gen-1", 3, 2, "otsu").to_pylist() == (
        bank.masks("red apple", "gen-1", 3, 2, "otsu").to_pylist()
    )
