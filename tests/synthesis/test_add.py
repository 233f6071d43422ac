import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import N_SUPPORT

import protodb
from protodb.bank.schema import SetKey, arrow_to_vectors, sql_str
from protodb.bank.store import open_bank
from protodb.errors import ProtodbError
from protodb.extractors.factory import default_extractor_config, get_extractor
from protodb.images import decode_png
from protodb.synthesis.add import MAX_N, add_class
from protodb.synthesis.generate import default_generator_config, generate_sd
from protodb.synthesis.masks import otsu_masks
from protodb.synthesis.prototypes import support_prototypes
from protodb.synthesis.recipe import make_recipe

GEN = default_generator_config("tiny")
EXT = default_extractor_config("tiny")


def _where(key: str) -> str:
    return f"class_key = {sql_str(key)}"


def _stored_prototypes(bank, key, ext=EXT):
    table = bank.read("prototypes__" + ext.id.replace("-", "_"), _where(key))
    vectors = arrow_to_vectors(table.column("vector"), table.schema.field("vector").type.list_size)
    return vectors, table.drop_columns(["vector"]).to_pylist()


# --------------------------------------------------------------------------- session bank


def test_add_results(tiny_bank):
    for res, name in zip(tiny_bank.add_results, ["red apple", "grass"], strict=True):
        assert res.status == "added"
        assert (res.name, res.class_key, res.n, res.seed) == (name, name, N_SUPPORT, 0)
        assert (res.generated, res.reused) == (N_SUPPORT, 0)
        assert res.generator_id == GEN.id
        assert res.built == [EXT.id] and res.skipped == []
        counts = res.prototypes[EXT.id]
        assert 1 <= counts["used"] <= N_SUPPORT
        assert counts["fg"] >= 2 and counts["bg"] >= 1
        assert res.seconds > 0
        # where the seconds went (protodb.timing): exclusive stage times adding up to them
        name = EXT.name
        for stage in (
            "sampling",
            "vae decode",
            "text encoder",
            "supports write",
            "masks",
            f"features {name}",
            f"prototypes {name}",
            f"bank write {name}",
            "other",
        ):
            assert res.timings[stage] >= 0, stage  # fmt: skip
        assert res.timings["sampling"] > 0 and res.timings[f"features {name}"] > 0
        assert sum(res.timings.values()) == pytest.approx(res.seconds, rel=1e-6)


def test_bank_rows_after_add(tiny_bank):
    bank = open_bank(str(tiny_bank.path), create=False)
    for key in ("red apple", "grass"):
        sup = bank.supports(key, GEN.id, 0).to_pylist()
        assert sorted(r["index"] for r in sup) == list(range(N_SUPPORT))
        assert all(
            (r["height"], r["width"], r["attr_h"], r["attr_w"]) == (64, 64, 32, 32) for r in sup
        )
        assert json.loads(sup[0]["generator_config"]) == json.loads(GEN.to_json())
        assert json.loads(sup[0]["runtime"])["device"] == "cpu"
        masks = bank.read("masks", _where(key)).to_pylist()
        assert sorted(r["index"] for r in masks) == list(range(N_SUPPORT))
        (row,) = bank.sets(key).to_pylist()
        assert (row["n"], row["n_supports"], row["dim"], row["mask_source"]) == (4, 4, 32, "otsu")
        assert row["extractor_id"] == EXT.id and row["generator_id"] == GEN.id
        assert json.loads(row["extractor_config"]) == json.loads(EXT.to_json())
        t_lo, t_hi = json.loads(row["thresholds"])
        assert 0 <= t_lo < t_hi <= 1
        vectors, meta = _stored_prototypes(bank, key)
        fg = [m for m in meta if m["polarity"] == "fg"]
        bg = [m for m in meta if m["polarity"] == "bg"]
        assert (len(fg), len(bg)) == (row["n_fg"], row["n_bg"])
        assert [m["level"] for m in fg].count("class") == 1
        assert [m["level"] for m in bg].count("class") == 1
        assert sum(m["level"] == "instance" for m in fg) == row["n_used"]
        assert sum(m["level"] == "part" for m in fg) <= 32
        assert np.isfinite(vectors).all()
        cells = bank.read("cells", _where(key)).to_pylist()
        assert sum(c["polarity"] == "fg" for c in cells) == row["n_used"]
        assert all((c["grid_h"], c["grid_w"]) == (8, 8) for c in cells)
        recipe = make_recipe("otsu", N_SUPPORT)
        assert (row["recipe_id"], row["recipe"]) == (recipe.id, recipe.to_json())
        assert bank.has_set(SetKey(key, GEN.id, 0, EXT.id, recipe.id))
        assert not bank.has_set(SetKey(key, GEN.id, 0, EXT.id, make_recipe("maskcut", 4).id))


def test_stored_class_prototype_is_weighted_mean_of_instances(tiny_bank):
    bank = open_bank(str(tiny_bank.path), create=False)
    vectors, meta = _stored_prototypes(bank, "red apple")
    for pol in ("fg", "bg"):
        rows = [i for i, m in enumerate(meta) if m["polarity"] == pol]
        cls = [i for i in rows if meta[i]["level"] == "class"]
        inst = [i for i in rows if meta[i]["level"] == "instance"]
        w = np.array([meta[i]["weight"] for i in inst])
        assert meta[cls[0]]["weight"] == w.sum()
        expected = (w[:, None] * vectors[inst]).sum(0) / w.sum()
        np.testing.assert_allclose(vectors[cls[0]], expected, atol=5e-3)


def test_stored_support_images_match_the_generator(tiny_bank):
    bank = open_bank(str(tiny_bank.path), create=False)
    rows = {r["index"]: r for r in bank.supports("grass", GEN.id, 0).to_pylist()}
    (fresh,) = generate_sd("grass", "grass", GEN, 0, [2])
    np.testing.assert_array_equal(decode_png(rows[2]["image_png"]), fresh.image)
    attr = np.frombuffer(rows[2]["attribution"], "<f4").reshape(32, 32)
    np.testing.assert_array_equal(attr, fresh.attribution)


def test_stored_masks_and_prototypes_recompute(tiny_bank):
    """Recompute masks and prototypes from the stored support set: the bank holds the same."""
    bank = open_bank(str(tiny_bank.path), create=False)
    key = "red apple"
    sup = sorted(bank.supports(key, GEN.id, 0).to_pylist(), key=lambda r: r["index"])
    images = np.stack([decode_png(r["image_png"]) for r in sup])
    attrs = [np.frombuffer(r["attribution"], "<f4").reshape(32, 32) for r in sup]
    masks = otsu_masks(attrs, (64, 64))
    stored = sorted(bank.read("masks", _where(key)).to_pylist(), key=lambda r: r["index"])
    np.testing.assert_array_equal(
        np.stack([decode_png(r["fg_png"], "1") for r in stored]), masks.fg
    )
    np.testing.assert_array_equal(
        np.stack([decode_png(r["bg_png"], "1") for r in stored]), masks.bg
    )
    assert tuple(json.loads(stored[0]["thresholds"])) == pytest.approx(masks.thresholds)
    feats = get_extractor(EXT, "cpu").extract(images).numpy()
    pf, pb = support_prototypes(feats, masks.fg, masks.bg)
    vectors, meta = _stored_prototypes(bank, key)
    for p in (pf, pb):
        rows = [i for i, m in enumerate(meta) if m["polarity"] == p.polarity]
        assert [meta[i]["level"] for i in rows] == list(p.level)
        assert [meta[i]["part"] for i in rows] == list(p.part)
        assert [meta[i]["support"] for i in rows] == list(p.support)
        np.testing.assert_allclose(
            vectors[rows], p.vectors.astype(np.float16).astype(np.float32), rtol=2e-3, atol=2e-3
        )


# --------------------------------------------------------------------------- writes


def test_second_add_is_a_no_op(bank_copy):
    bank = open_bank(str(bank_copy))
    before, hist = bank.versions(), len(bank.history())
    res = add_class(
        bank, "Red  Apple", generator=GEN, extractors=[EXT], n=N_SUPPORT, progress=False
    )
    assert res.status == "exists"
    assert (res.generated, res.reused, res.built) == (0, 0, [])
    assert res.skipped == [EXT.id]
    assert res.class_key == "red apple" and res.name == "Red Apple"
    assert bank.versions() == before and len(bank.history()) == hist
    assert res.timings == {}  # nothing to do: no stage ran


def test_new_extractor_reuses_support_images(bank_copy):
    bank = open_bank(str(bank_copy))
    ext2 = replace(EXT, input_size=32, store_dtype="float32")
    res = add_class(
        bank, "grass", generator=GEN, extractors=[EXT, ext2], n=N_SUPPORT, progress=False
    )
    assert res.status == "added"
    assert (res.generated, res.reused) == (0, N_SUPPORT)
    assert res.built == [ext2.id] and res.skipped == [EXT.id]
    assert bank.supports("grass", GEN.id, 0).num_rows == N_SUPPORT  # nothing re-stored
    assert bank.read("masks", _where("grass")).num_rows == N_SUPPORT
    (row,) = bank.read(
        "sets", f"class_key = 'grass' AND extractor_id = {sql_str(ext2.id)}"
    ).to_pylist()
    assert row["dim"] == 32 and row["n"] == N_SUPPORT
    vectors, _ = _stored_prototypes(bank, "grass", ext2)
    assert len(vectors) == row["n_fg"] + row["n_bg"]
    assert bank.history()[-1].detail["extractors"] == [ext2.id]
    assert bank.history()[-1].detail["generated"] == 0


def test_larger_n_with_new_extractor_generates_only_missing(tmp_path):
    bank = open_bank(str(tmp_path / "bank"))
    gen = replace(GEN, steps=2)
    first = add_class(bank, "sky", generator=gen, extractors=[EXT], n=2, progress=False)
    assert (first.generated, first.reused, first.status) == (2, 0, "added")
    ext2 = replace(EXT, input_size=32)
    second = add_class(bank, "sky", generator=gen, extractors=[ext2], n=3, progress=False)
    assert (second.generated, second.reused, second.status) == (1, 2, "added")
    sup = bank.supports("sky", gen.id, 0).column("index").to_pylist()
    assert sorted(sup) == [0, 1, 2]
    masks = bank.read("masks", "class_key = 'sky'").to_pylist()
    assert sorted((r["n"], r["index"]) for r in masks) == [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]


def test_add_with_other_seed_is_a_new_set(tmp_path):
    bank = open_bank(str(tmp_path / "bank"))
    gen = replace(GEN, steps=2)
    a = add_class(bank, "sky", generator=gen, extractors=[EXT], n=1, seed=0, progress=False)
    b = add_class(bank, "sky", generator=gen, extractors=[EXT], n=1, seed=5, progress=False)
    assert a.status == b.status == "added" and b.generated == 1
    assert sorted(bank.sets("sky").column("seed").to_pylist()) == [0, 5]
    assert bank.classes().num_rows == 1
    img0 = decode_png(bank.supports("sky", gen.id, 0).to_pylist()[0]["image_png"])
    img5 = decode_png(bank.supports("sky", gen.id, 5).to_pylist()[0]["image_png"])
    assert not np.array_equal(img0, img5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "--n 0 is out of range"),
        ({"n": MAX_N + 1}, f"--n {MAX_N + 1} is out of range"),
        ({"extractors": []}, "no extractor given"),
        ({"mask_source": "cutler"}, "unknown mask source 'cutler'"),
        ({"generator": replace(GEN, name="flux")}, "unknown generator 'flux'"),
    ],
)
def test_add_errors_write_nothing(tmp_path, kwargs, message):
    bank = open_bank(str(tmp_path / "bank"))
    before = bank.versions()
    args = {"generator": GEN, "extractors": [EXT], "n": 2, "progress": False, **kwargs}
    with pytest.raises(ProtodbError, match=message):
        add_class(bank, "sky", **args)
    assert bank.versions() == before


def test_bad_class_name_raises(tmp_path):
    bank = open_bank(str(tmp_path / "bank"))
    with pytest.raises(ProtodbError, match="empty class name"):
        add_class(bank, "  ", generator=GEN, extractors=[EXT], n=1, progress=False)


def test_add_records_kind_mask_source_and_several_seeds(tmp_path):
    """kind (user flag > lexicon > guess) and the mask source are stored with the data; one
    support set per seed, models loaded once."""
    db = protodb.connect(tmp_path / "bank", profile="tiny", device="cpu")
    res = db.add(
        ["glaze"], n=2, seed=[0, 1], extractors=("dinov2",), progress=False, mask_source="maskcut"
    )
    assert [(r.seed, r.status) for r in res] == [(0, "added"), (1, "added")]
    assert res[0].kind_source == "auto" and res[0].kind in ("stuff", "thing")
    sets = db.bank.sets().to_pylist()
    assert sorted(s["seed"] for s in sets) == [0, 1]
    assert {s["mask_source"] for s in sets} == {"maskcut"}
    flagged = db.add(["sea"], n=1, kind="thing", extractors=("dinov2",), progress=False)[0]
    assert (flagged.kind, flagged.kind_source) == ("thing", "user")
    info = {c.name: (c.kind, c.kind_source) for c in db.classes()}
    assert info["sea"] == ("thing", "user") and info["glaze"][1] == "auto"


def test_another_recipe_is_another_set_and_the_same_recipe_one(tmp_path):
    """mask source, n and K are in the set's key (its recipe): each makes a new set, reusing
    the support images; the same recipe again is a no-op."""
    from protodb.bank.recipe import check_recipe

    bank = open_bank(str(tmp_path / "bank"))
    gen = replace(GEN, steps=2)
    args = {"generator": gen, "extractors": [EXT], "progress": False}
    plain = add_class(bank, "sky", n=2, **args)
    cut = add_class(bank, "sky", n=2, mask_source="maskcut", **args)
    few = add_class(bank, "sky", n=2, parts=3, **args)
    again = add_class(bank, "sky", n=2, mask_source="maskcut", **args)
    assert [r.status for r in (plain, cut, few, again)] == ["added", "added", "added", "exists"]
    assert (cut.generated, cut.reused, few.reused) == (0, 2, 2)
    assert plain.recipe_id == make_recipe("otsu", 2).id
    assert cut.recipe_id == make_recipe("maskcut", 2).id == again.recipe_id
    assert few.recipe_id == make_recipe("otsu", 2, 3).id
    sets = bank.sets("sky").to_pylist()
    assert sorted(s["recipe_id"] for s in sets) == sorted(
        [plain.recipe_id, cut.recipe_id, few.recipe_id]
    )
    assert all(check_recipe(s["recipe_id"], s["recipe"]) is None for s in sets)
    assert {s["mask_source"] for s in sets} == {"otsu", "maskcut"}
    assert bank.classes().num_rows == 1 and bank.supports("sky", gen.id, 0).num_rows == 2
    assert [e.detail["recipe_id"] for e in bank.history()] == [
        plain.recipe_id,
        cut.recipe_id,
        few.recipe_id,
    ]
    table = "prototypes__" + EXT.id.replace("-", "_")
    _, rows = bank.load_prototypes(table, EXT.id, [("sky", gen.id, 0, few.recipe_id)])
    levels = rows["level"].to_pylist()
    parts = [p for p, lev in zip(rows["part"].to_pylist(), levels, strict=True) if lev == "part"]
    assert parts and max(parts) <= 2  # K = 3
    _, rows = bank.load_prototypes(table, EXT.id, [("sky", gen.id, 0, plain.recipe_id)])
    assert max(rows["part"].to_pylist()) > 2
    with pytest.raises(ProtodbError, match="several recipes"):
        bank.load_prototypes(table, EXT.id, [("sky", gen.id, 0)])
    with pytest.raises(ProtodbError, match="--parts 0 is out of range"):
        add_class(bank, "sky", n=2, parts=0, **args)
