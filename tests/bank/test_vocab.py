"""Vocabularies: pins, names, choices and errors (protodb.bank.vocab)."""

import json
import shutil

import pytest
from conftest import CLASSES

from protodb.bank.store import open_bank
from protodb.bank.vocab import create_vocab, get_vocab, list_vocabs
from protodb.errors import NotFoundError, ProtodbError
from protodb.extractors.factory import default_extractor_config
from protodb.query.assemble import assemble
from protodb.synthesis.generate import default_generator_config

EXT = default_extractor_config("tiny")

GEN = default_generator_config("tiny")


@pytest.fixture(scope="module")
def error_bank(tiny_bank, tmp_path_factory):
    """A copy of the session bank for calls that must fail (and so write nothing)."""
    path = tmp_path_factory.mktemp("vocab-errors") / "bank"
    shutil.copytree(tiny_bank.path, path)
    return open_bank(str(path), create=False)


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


def test_vocab_pins_table_versions(bank_copy_uri):
    """On a local directory and on the emulated S3 (``store``)."""
    bank = open_bank(bank_copy_uri, create=False)
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


def test_create_with_order_case_and_extractor_forms(bank_copy_uri):
    bank = open_bank(bank_copy_uri, create=False)
    v = create_vocab(bank, "rev", ["GRASS", "Red Apple"], extractors=["dinov2"])
    assert v.class_names == ["grass", "red apple"]  # the bank's display names
    assert [e.extractor_id for e in v.extractors] == [EXT.id]
    w = create_vocab(bank, "by-id", ["grass"], extractors=[EXT.id], seed=0, generator_id=GEN.id)
    assert [e.extractor_id for e in w.extractors] == [EXT.id]
    assert [x.name for x in list_vocabs(bank)] == ["by-id", "rev", "v1"]
    assert [e.op for e in bank.history()][-2:] == ["vocab create", "vocab create"]
    # a pin reads what was there when it was made, whatever comes after
    v1 = get_vocab(bank, "v1")
    assert v1.versions == get_vocab(open_bank(bank_copy_uri, create=False), "v1").versions


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


def test_vocab_refuses_more_classes_than_8bit_labels(tiny_bank):
    bank = open_bank(str(tiny_bank.path))
    with pytest.raises(ProtodbError, match="at most 255 classes"):
        create_vocab(bank, "huge", [f"class {i}" for i in range(256)])


def test_a_vocabulary_never_mixes_sets_from_before_and_after_a_fix():
    from protodb.bank.vocab import _without_superseded
    from protodb.extractors.base import ExtractorConfig

    old = ExtractorConfig(name="clip", model="ViT-B-16/openai", layer="keys:10", input_size=512)
    new = ExtractorConfig(name="clip", model="ViT-B-16-quickgelu/openai", layer="keys:10")
    dino = ExtractorConfig(name="dino", model="facebook/dino-vitb8")
    sets = {c.id: {"extractor_config": c.to_json()} for c in (old, new, dino)}
    both = sorted(sets)
    assert _without_superseded(both, sets) == sorted([new.id, dino.id])
    # a bank holding only sets from before the fix still makes a (consistent) vocabulary
    assert _without_superseded(sorted([old.id, dino.id]), sets) == sorted([old.id, dino.id])


# ------------------------------------------------------------------ recipes


@pytest.fixture(scope="module")
def recipe_bank(tmp_path_factory):
    """sky: the plain recipe (otsu, n=2, K=32), maskcut and K=3; sea: maskcut and K=2 (n=1),
    no plain one."""
    from dataclasses import replace

    from protodb.synthesis.add import add_class

    bank = open_bank(str(tmp_path_factory.mktemp("recipes") / "bank"))
    args = {"generator": replace(GEN, steps=2), "extractors": [EXT], "progress": False}
    sky = [
        add_class(bank, "sky", n=2, **args),
        add_class(bank, "sky", n=2, mask_source="maskcut", **args),
        add_class(bank, "sky", n=2, parts=3, **args),
    ]
    sea = [
        add_class(bank, "sea", n=1, mask_source="maskcut", **args),
        add_class(bank, "sea", n=1, parts=2, **args),
    ]
    return bank, [r.recipe_id for r in sky], [r.recipe_id for r in sea]


def test_a_vocabulary_picks_the_plain_recipe_or_the_one_named(recipe_bank):
    bank, sky, sea = recipe_bank
    (only,) = create_vocab(bank, "r-plain", ["sky"]).classes
    assert only.recipe_id == sky[0]
    v = create_vocab(bank, "r-named", ["sky", "sea"], recipes=[f"sky={sky[1]}", f"sea={sea[1]}"])
    assert [c.recipe_id for c in v.classes] == [sky[1], sea[1]]
    assert [c.recipe_id for c in get_vocab(bank, "r-named").classes] == [sky[1], sea[1]]
    # an id given for every class: each class that has it takes it
    v = create_vocab(bank, "r-every", ["sky", "sea"], recipes=[sky[2], sea[0]])
    assert [c.recipe_id for c in v.classes] == [sky[2], sea[0]]
    # the vocabulary reads the chosen sets' prototypes
    rows = {s["recipe_id"]: s for s in bank.sets().to_pylist()}
    (protos,) = assemble(bank, get_vocab(bank, "r-named"))
    assert len(protos.rows) == sum(rows[r]["n_fg"] + rows[r]["n_bg"] for r in (sky[1], sea[1]))
    (protos,) = assemble(bank, get_vocab(bank, "r-plain"))
    assert len(protos.rows) == rows[sky[0]]["n_fg"] + rows[sky[0]]["n_bg"]


@pytest.mark.parametrize(
    ("classes", "recipes", "message"),
    [
        (["sky", "sea"], None, "class 'sea' has prototype sets of several recipes (.*); choose "
         "one with --recipe sea=ID"),
        (["sky"], ["sky=otsu-000000000000"], "class 'sky' has no prototype set of recipe "
         "otsu-000000000000 .*--recipe sky=ID"),
        (["sky"], ["otsu"], "is not a recipe id"),
        (["sky"], ["sea=otsu-000000000000"], "names a class that is not in the vocabulary"),
        (["sea"], ["otsu-000000000000"], "class 'sea' has none of the recipes given"),
    ],
)  # fmt: skip
def test_a_recipe_choice_that_cannot_be_made_is_one_line(recipe_bank, classes, recipes, message):
    bank, _, _ = recipe_bank
    before = bank.versions()
    with pytest.raises(ProtodbError, match=message) as err:
        create_vocab(bank, "r-bad", classes, recipes=recipes)
    assert "\n" not in str(err.value)
    assert bank.versions() == before


def test_a_vocabulary_pins_the_kinds_the_query_uses(bank_copy):
    """A dataset's kind beats the lexicon's (VOC's 'table' is a thing, COCO-Stuff's is stuff):
    here grass, stuff in the bank, is pinned a thing; the query and the record follow the pin."""
    import protodb
    from protodb.query.assemble import class_stuff

    db = protodb.connect(bank_copy, profile="tiny", device="cpu")
    bank = open_bank(str(bank_copy), create=False)
    plain = create_vocab(bank, "plain", CLASSES)
    assert [(c.kind, c.kind_source) for c in plain.classes] == [
        ("thing", "lexicon"),
        ("stuff", "lexicon"),
    ]
    pinned = create_vocab(bank, "pinned", CLASSES, kinds={"grass": ("thing", "dataset voc")})
    assert [(c.kind, c.kind_source) for c in pinned.classes][1] == ("thing", "dataset voc")
    again = get_vocab(open_bank(str(bank_copy), create=False), "pinned")
    assert again.classes == pinned.classes
    assert [c["kind"] for c in again.to_dict()["classes"]] == ["thing", "thing"]
    assert class_stuff(bank, plain).tolist() == [False, False, True]
    assert class_stuff(bank, again).tolist() == [False, False, False]
    assert db.vocab("pinned").segmenter.stuff.tolist() == [False, False, False]
    assert db.vocab("plain").segmenter.stuff.tolist() == [False, False, True]


def test_kind_choices_that_cannot_be_pinned_are_one_line(error_bank):
    with pytest.raises(ProtodbError, match=r"kinds='solid' \(class 'grass'\) is not one of"):
        create_vocab(error_bank, "k1", CLASSES, kinds={"grass": "solid"})
    with pytest.raises(ProtodbError, match=r"kinds='sky' names a class that is not in"):
        create_vocab(error_bank, "k2", CLASSES, kinds={"sky": "stuff"})


def test_a_vocabulary_made_before_kinds_were_pinned_reads_the_classes_table(bank_copy):
    import pyarrow as pa

    bank = open_bank(str(bank_copy), create=False)
    row = bank.read("vocabs", "name = 'v1'").to_pylist()[0]
    classes = json.loads(row["classes"])
    for c in classes:
        c.pop("kind", None), c.pop("kind_source", None)
    row.update(name="old", classes=json.dumps(classes))
    bank.append("vocabs", pa.Table.from_pylist([row], schema=bank.read("vocabs").schema))
    old = get_vocab(bank, "old")
    assert [(c.kind, c.kind_source) for c in old.classes] == [
        ("thing", "lexicon (not pinned)"),
        ("stuff", "lexicon (not pinned)"),
    ]
    assert [v.name for v in list_vocabs(bank)] == ["old", "v1"]
