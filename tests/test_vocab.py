import json
import shutil

import numpy as np
import pytest
from conftest import CLASSES

from protodb.bank.store import open_bank
from protodb.bank.vocab import create_vocab, get_vocab, list_vocabs
from protodb.errors import NotFoundError, ProtodbError
from protodb.extractors.factory import default_extractor_config
from protodb.query.assemble import ExtractorPrototypes, assemble, filter_stuff
from protodb.synthesis.generate import default_generator_config

EXT = default_extractor_config("tiny")
GEN = default_generator_config("tiny")


@pytest.fixture(scope="module")
def error_bank(tiny_bank, tmp_path_factory):
    """A copy of the session bank for calls that must fail (and so write nothing)."""
    path = tmp_path_factory.mktemp("vocab-errors") / "bank"
    shutil.copytree(tiny_bank.path, path)
    return open_bank(str(path), create=False)


# --------------------------------------------------------------------------- create / get


def test_session_vocab(tiny_bank):
    v = tiny_bank.vocab
    assert v.name == "v1"
    assert v.class_names == CLASSES
    assert [(c.class_key, c.generator_id, c.seed) for c in v.classes] == [
        ("red apple", GEN.id, 0),
        ("grass", GEN.id, 0),
    ]
    (ext,) = v.extractors
    assert ext.extractor_id == EXT.id and ext.config == EXT
    assert ext.prototype_table == "prototypes__" + EXT.id.replace("-", "_")


def test_vocab_pins_table_versions(tiny_bank):
    bank = open_bank(str(tiny_bank.path), create=False)
    v = get_vocab(bank, "v1")
    entry = bank.history()[-1]
    assert entry.op == "vocab create" and entry.detail == {"name": "v1", "classes": CLASSES}
    assert v.bank_version == entry.version == 3
    for table, version in v.versions.items():
        if table == "vocabs":  # the vocabulary's own row lands after the pin
            assert entry.versions[table] == version + 1
        else:
            assert entry.versions[table] == version, table


def test_get_and_list_round_trip(tiny_bank):
    bank = open_bank(str(tiny_bank.path), create=False)
    v = get_vocab(bank, "v1")
    assert v.classes == tiny_bank.vocab.classes
    assert v.extractors == tiny_bank.vocab.extractors
    assert v.versions == tiny_bank.vocab.versions
    assert [x.name for x in list_vocabs(bank)] == ["v1"]
    d = json.loads(json.dumps(v.to_dict()))
    assert d["name"] == "v1" and d["bank_version"] == 3
    assert [c["name"] for c in d["classes"]] == CLASSES
    assert d["extractors"][0]["extractor_id"] == EXT.id


def test_unknown_vocab_lists_known(tiny_bank):
    bank = open_bank(str(tiny_bank.path), create=False)
    with pytest.raises(NotFoundError, match=r"unknown vocabulary 'nope' \(known: v1\)"):
        get_vocab(bank, "nope")


def test_create_with_order_case_and_extractor_forms(bank_copy):
    bank = open_bank(str(bank_copy), create=False)
    v = create_vocab(bank, "rev", ["GRASS", "Red Apple"], extractors=["dinov2"])
    assert v.class_names == ["grass", "red apple"]  # the bank's display names
    assert [e.extractor_id for e in v.extractors] == [EXT.id]
    w = create_vocab(bank, "by-id", ["grass"], extractors=[EXT.id], seed=0, generator_id=GEN.id)
    assert [e.extractor_id for e in w.extractors] == [EXT.id]
    assert [x.name for x in list_vocabs(bank)] == ["by-id", "rev", "v1"]
    assert [e.op for e in bank.history()][-2:] == ["vocab create", "vocab create"]


@pytest.mark.parametrize("name", ["", "-v", ".v", "v 1", "v1\n", "a/b", "x" * 65, "v1;drop"])
def test_bad_vocab_name(error_bank, name):
    with pytest.raises(ProtodbError, match="invalid vocabulary name") as err:
        create_vocab(error_bank, name, ["grass"])
    assert repr(name) in str(err.value)


def test_longest_vocab_name_is_fine(bank_copy):
    bank = open_bank(str(bank_copy), create=False)
    assert create_vocab(bank, "x" * 64, ["grass"]).name == "x" * 64


@pytest.mark.parametrize(
    ("classes", "kwargs", "error", "message"),
    [
        (["grass", "sky"], {}, NotFoundError, "class 'sky' is not in the bank"),
        (["grass", "Grass "], {}, ProtodbError, "class 'Grass' is listed twice"),
        ([], {}, ProtodbError, "at least one class"),
        (["grass"], {"extractors": ["clip"]}, NotFoundError, "extractor 'clip' is not available"),
        (["grass"], {"seed": 7}, NotFoundError, "class 'grass' has no prototype set with seed=7"),
        (["grass"], {"generator_id": "sd-0"}, NotFoundError, "generator=sd-0"),
        (["  "], {}, ProtodbError, "empty class name"),
    ],
)
def test_create_errors(error_bank, classes, kwargs, error, message):
    before = error_bank.versions()
    with pytest.raises(error, match=message):
        create_vocab(error_bank, "new", classes, **kwargs)
    assert error_bank.versions() == before


def test_existing_name_is_refused(error_bank):
    with pytest.raises(ProtodbError, match="vocabulary 'v1' exists"):
        create_vocab(error_bank, "v1", ["grass"])


def test_several_sets_need_a_choice(grown_bank):
    bank = open_bank(str(grown_bank.path), create=False)
    with pytest.raises(ProtodbError, match="'grass' has several prototype sets") as err:
        create_vocab(bank, "g", ["grass"])
    assert "--seed 0" in str(err.value) and "--seed 1" in str(err.value)


# --------------------------------------------------------------------------- assemble


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


def test_seed_chooses_among_sets(grown_bank, tmp_path):
    shutil.copytree(grown_bank.path, tmp_path / "bank")
    bank = open_bank(str(tmp_path / "bank"), create=False)
    v = create_vocab(bank, "g1", ["grass"], seed=1)
    assert [(c.class_key, c.seed) for c in v.classes] == [("grass", 1)]
    (p,) = assemble(bank, v)
    assert {r["seed"] for r in p.rows} == {1}
    with pytest.raises(NotFoundError, match="seed=1"):
        create_vocab(bank, "g2", ["grass", "sky"], seed=1)  # sky only has seed 0
    w = create_vocab(bank, "g3", ["sky", "grass"], seed=0)
    assert w.class_names == ["sky", "grass"]


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


def test_vocab_refuses_more_classes_than_8bit_labels(tiny_bank):
    bank = open_bank(str(tiny_bank.path))
    with pytest.raises(ProtodbError, match="at most 255 classes"):
        create_vocab(bank, "huge", [f"class {i}" for i in range(256)])


# --------------------------------------------------------------------------- stuff / thing


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
