"""Assembling pinned vocabularies and the stuff filter (protodb.query.assemble)."""

import numpy as np

from protodb.bank.store import open_bank
from protodb.bank.vocab import create_vocab, get_vocab
from protodb.extractors.factory import default_extractor_config
from protodb.query.assemble import ExtractorPrototypes, assemble, filter_stuff
from protodb.synthesis.generate import default_generator_config

EXT = default_extractor_config("tiny")

GEN = default_generator_config("tiny")


def _stuff_protos():
    """Labels: 1 thing with 3 bg rows, 2 stuff, 3 thing with 1 bg row (D = 3)."""
    s = np.sqrt
    vectors = np.array(
        [
            [1, 0, 0],  # 0 fg of 1
            [0, 1, 0],  # 1 fg of 2 (stuff)
            [0, 0, 1],  # 2 fg of 3
            [s(1 - 0.81), 0.9, 0],  # 3 bg of 1: cos 0.9 to stuff fg -> dropped
            [s(1 - 0.84**2), 0.84, 0],  # 4 bg of 1: cos 0.84, not > 0.85 -> kept
            [1, 0, 0],  # 5 bg of 1: far -> kept
            [0, 1, 0],  # 6 bg of 2 (stuff) -> dropped
            [0, 1, 0],  # 7 bg of 3: the class's only bg row -> kept
        ],
        np.float32,
    )
    rows = [{"polarity": "fg" if i < 3 else "bg", "level": "class"} for i in range(8)]
    return ExtractorPrototypes(
        None,
        vectors,
        np.array([1, 2, 3, 0, 0, 0, 0, 0]),
        rows,
        np.array([1, 2, 3, 1, 1, 1, 2, 3]),
        np.array([False, False, True, False]),
    )


def test_assemble_order_owner_and_norms(tiny_bank):
    bank = open_bank(str(tiny_bank.path), create=False)
    (p,) = assemble(bank, tiny_bank.vocab)
    sets = {r["class_key"]: r for r in bank.sets().to_pylist()}
    n_bg = sum(s["n_bg"] for s in sets.values())
    assert (
        len(p.vectors)
        == len(p.owner)
        == len(p.rows)
        == n_bg + sum(s["n_fg"] for s in sets.values())
    )
    expected_owner = [0] * n_bg + [1] * sets["red apple"]["n_fg"] + [2] * sets["grass"]["n_fg"]
    assert p.owner.tolist() == expected_owner
    assert p.owner.dtype == np.int64
    np.testing.assert_allclose(np.linalg.norm(p.vectors, axis=1), 1.0, atol=1e-5)
    assert all(r["polarity"] == "bg" for r in p.rows[:n_bg])
    fg_apple = [r for r in p.rows if r["polarity"] == "fg" and r["class_key"] == "red apple"]
    levels = [r["level"] for r in fg_apple]
    assert levels == sorted(levels, key=["class", "instance", "part"].index)
    parts = [r["part"] for r in fg_apple if r["level"] == "part"]
    assert parts == sorted(parts)
    # background rows: bg of red apple then bg of grass
    keys = [r["class_key"] for r in p.rows[:n_bg]]
    assert keys == ["red apple"] * sets["red apple"]["n_bg"] + ["grass"] * sets["grass"]["n_bg"]


def test_assemble_follows_vocab_order(bank_copy):
    bank = open_bank(str(bank_copy), create=False)
    v1 = get_vocab(bank, "v1")
    rev = create_vocab(bank, "rev", ["grass", "red apple"])
    (a,) = assemble(bank, v1)
    (b,) = assemble(bank, rev)
    for key, la, lb in (("red apple", 1, 2), ("grass", 2, 1)):
        np.testing.assert_array_equal(a.vectors[a.owner == la], b.vectors[b.owner == lb])
        assert {r["class_key"] for r, o in zip(b.rows, b.owner, strict=True) if o == lb} == {key}


def test_assemble_is_pinned_after_the_bank_grows(tiny_bank, grown_bank):
    before = assemble(open_bank(str(tiny_bank.path), create=False), tiny_bank.vocab)[0]
    bank = open_bank(str(grown_bank.path), create=False)
    v1 = get_vocab(bank, "v1")
    (ext,) = v1.extractors
    where = "class_key = 'grass'"
    pinned = bank.read(ext.prototype_table, where, version=v1.versions[ext.prototype_table])
    assert bank.read(ext.prototype_table, where).num_rows > pinned.num_rows  # it did grow
    (after,) = assemble(bank, v1)
    np.testing.assert_array_equal(after.vectors, before.vectors)
    np.testing.assert_array_equal(after.owner, before.owner)
    assert after.rows == before.rows
    assert {r["seed"] for r in after.rows} == {0}
    assert "sky" not in {r["class_key"] for r in after.rows}


def test_assemble_reads_the_pinned_table_version(tiny_bank, bank_copy):
    """Rows changed after the pin (here: deleted and replaced) do not reach the vocabulary."""
    before = assemble(open_bank(str(tiny_bank.path), create=False), tiny_bank.vocab)[0]
    bank = open_bank(str(bank_copy), create=False)
    v1 = get_vocab(bank, "v1")
    (ext,) = v1.extractors
    table = bank.table(ext.prototype_table)
    grass = bank.read(ext.prototype_table, "class_key = 'grass'")
    table.delete("class_key = 'grass'")
    table.add(grass.slice(0, 1))  # one stale row with the same key
    assert bank.read(ext.prototype_table, "class_key = 'grass'").num_rows == 1
    (after,) = assemble(bank, v1)
    np.testing.assert_array_equal(after.vectors, before.vectors)
    assert after.rows == before.rows


def test_filter_stuff_by_hand():
    p = filter_stuff(_stuff_protos(), 0.85)
    assert p.owner.tolist() == [1, 2, 3, 0, 0, 0]
    assert p.source.tolist() == [1, 2, 3, 1, 1, 3]
    np.testing.assert_array_equal(p.vectors, _stuff_protos().vectors[[0, 1, 2, 4, 5, 7]])
    # a lower threshold drops more
    assert filter_stuff(_stuff_protos(), 0.5).source.tolist() == [1, 2, 3, 1, 3]


def test_filter_stuff_without_stuff_is_a_no_op():
    p = _stuff_protos()
    p.stuff = np.zeros(4, bool)
    assert filter_stuff(p) is p


def test_select_rows_applies_stuff_filter_per_config():
    from protodb.query.config import QueryConfig
    from protodb.query.segment import select_rows

    assert len(select_rows(_stuff_protos(), QueryConfig()).owner) == 6
    assert len(select_rows(_stuff_protos(), QueryConfig(stuff_filter=False)).owner) == 8


def test_kinds_come_from_the_pinned_classes_table(bank_copy):
    import protodb
    from protodb.query.segment import Segmenter

    db = protodb.connect(bank_copy, profile="tiny", device="cpu")
    # grass is stuff by the lexicon when v1 was pinned; make it a thing afterwards
    db.bank.table("classes").update(where="class_key = 'grass'", values={"kind": "thing"})
    db.create_vocab("v2", ["red apple", "grass"])
    (p1,) = assemble(db.bank, get_vocab(db.bank, "v1"))
    (p2,) = assemble(db.bank, get_vocab(db.bank, "v2"))
    assert p1.stuff.tolist() == [False, False, True]  # v1 pinned the table before
    assert p2.stuff.tolist() == [False, False, False]
    assert ((p1.owner == 0) & (p1.source == 2)).any()  # assemble keeps every row ...
    seg = Segmenter(get_vocab(db.bank, "v1"), [p1], "cpu")
    part = seg.parts[0]
    bg_sources = part.source[part.owner == 0].tolist()
    assert bg_sources and 2 not in bg_sources  # ... the query drops the stuff's bg rows
