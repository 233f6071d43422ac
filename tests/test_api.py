from pathlib import Path

import numpy as np
import pytest
from conftest import CLASSES, N_SUPPORT, make_image
from PIL import Image
from typer.testing import CliRunner

import protodb
from protodb.api import ClassInfo, ProtoDB, VocabHandle
from protodb.bank.store import open_bank
from protodb.errors import ModelNotFoundError, NotFoundError, ProtodbError
from protodb.extractors.factory import default_extractor_config
from protodb.query.config import QueryConfig
from protodb.synthesis.generate import default_generator_config

EXT = default_extractor_config("tiny")
GEN = default_generator_config("tiny")


def test_package_exports():
    assert protodb.__version__ == "0.1.0"
    assert protodb.connect is not None and protodb.ProtoDB is ProtoDB
    assert issubclass(protodb.NotFoundError, protodb.ProtodbError)
    assert issubclass(ModelNotFoundError, ProtodbError)


def test_connect_settings(tmp_path, monkeypatch):
    db = protodb.connect(tmp_path / "b", profile="tiny", device="cpu")
    assert db.settings.bank == str((tmp_path / "b").resolve())
    assert (db.settings.profile, db.device) == ("tiny", "cpu")
    monkeypatch.setenv("PROTODB_BANK", str(tmp_path / "env"))
    monkeypatch.setenv("PROTODB_PROFILE", "tiny")
    db = protodb.connect()
    assert db.settings.bank == str((tmp_path / "env").resolve())
    assert db.settings.profile == "tiny"
    with pytest.raises(ProtodbError, match="unknown profile 'big'"):
        protodb.connect(tmp_path, profile="big")


# --------------------------------------------------------------------------- reads


def test_classes_and_show(tiny_bank):
    infos = tiny_bank.db.classes()
    assert [c.name for c in infos] == sorted(CLASSES)
    assert all(isinstance(c, ClassInfo) for c in infos)
    # kinds from the shipped lexicon (protodb.synthesis.kinds): grass is stuff, an apple a thing
    assert [(c.kind, c.kind_source) for c in infos] == [("stuff", "lexicon"), ("thing", "lexicon")]
    info = tiny_bank.db.show("  RED   Apple ")
    assert info.class_key == "red apple" and info.name == "red apple"
    (s,) = info.sets
    assert (s["generator_id"], s["seed"], s["extractor_id"], s["n"]) == (
        GEN.id,
        0,
        EXT.id,
        N_SUPPORT,
    )
    assert s["dim"] == 32 and s["mask_source"] == "otsu"
    assert set(s) == {
        "generator_id", "seed", "extractor_id", "n", "n_used", "n_fg", "n_bg", "dim",
        "mask_source", "thresholds", "known_issue", "recipe_id", "recipe",
    }  # fmt: skip
    assert s["known_issue"] is None
    assert s["recipe"]["n"] == N_SUPPORT and s["recipe"]["parts"] == 32
    assert s["recipe_id"].startswith("otsu-")


def test_show_unknown_class(tiny_bank):
    with pytest.raises(NotFoundError, match="class 'Sky' is not in the bank"):
        tiny_bank.db.show("Sky")


def test_history_and_vocabs(tiny_bank):
    assert [e.op for e in tiny_bank.db.history()] == ["add", "add", "vocab create"]
    assert [v.name for v in tiny_bank.db.vocabs()] == ["v1"]
    handle = tiny_bank.db.vocab("v1")
    assert isinstance(handle, VocabHandle) and handle.info.class_names == CLASSES
    with pytest.raises(NotFoundError, match="unknown vocabulary 'v2'"):
        tiny_bank.db.vocab("v2")


def test_listings_through_the_quick_reader_equal_the_banks(grown_bank):
    """A new session lists through protodb.bank.readonly (no Bank opened); the same session
    with its Bank open lists through the Bank: the same classes, history and vocabularies, at
    the latest and at every bank version."""
    for at in (None, 1, 3, 5):
        quick = protodb.connect(grown_bank.path, profile="tiny", device="cpu", at=at)
        full = protodb.connect(grown_bank.path, profile="tiny", device="cpu", at=at)
        full.open_existing()
        assert quick.classes() == full.classes()
        assert quick.show("red apple") == full.show("red apple")
        assert quick.history() == full.history()
        assert quick.vocabs() == full.vocabs()
        if at != 1:
            assert quick.vocab("v1").info == full.vocab("v1").info
        assert quick._bank is None and quick._reader


def test_listings_fall_back_to_the_bank(tiny_bank, monkeypatch):
    """A protodb error of a listing is the listing's; any other failure of the quick reader
    leaves the listing to the Bank, which reads it or reports it as before."""
    from protodb.bank.readonly import BankReader

    db = protodb.connect(tiny_bank.path, profile="tiny", device="cpu")
    with pytest.raises(NotFoundError, match="unknown vocabulary 'v2'"):
        db.vocab("v2")
    assert db._bank is None

    def broken(self, *args, **kwargs):
        raise OSError("Lance could not read it")

    monkeypatch.setattr(BankReader, "read", broken)
    assert [c.name for c in db.classes()] == sorted(CLASSES)
    assert db._bank is not None and db._reader is False


@pytest.mark.parametrize(
    "call",
    [
        lambda db: db.classes(),
        lambda db: db.history(),
        lambda db: db.vocabs(),
        lambda db: db.vocab("v1"),
    ],
)
def test_reads_do_not_create_a_bank(tmp_path, call):
    db = protodb.connect(tmp_path / "missing", profile="tiny", device="cpu")
    with pytest.raises(NotFoundError, match="no protodb bank"):
        call(db)
    with pytest.raises(NotFoundError):
        open_bank(str(tmp_path / "missing"), create=False)


def test_create_vocab_needs_existing_bank(tmp_path):
    db = protodb.connect(tmp_path / "missing", profile="tiny", device="cpu")
    with pytest.raises(NotFoundError, match="no protodb bank"):
        db.create_vocab("v", ["grass"])


# --------------------------------------------------------------------------- add


@pytest.mark.parametrize(
    ("names", "kwargs", "message"),
    [
        ([], {}, "no class given"),
        (["grass", " GRASS"], {}, "listed twice"),
        (["grass"], {"seed": -1}, r"--seed -1 must be from 0 to 2\*\*63 - 1"),
        (["grass"], {"extractors": ["resnet"]}, "unknown extractor 'resnet'"),
        (["grass"], {"steps": 0}, "steps=0 is out of range"),
        (["grass"], {"template": "no placeholder"}, "template 'no placeholder'"),
        (["grass", ""], {}, "empty class name"),
    ],
)
def test_add_argument_errors_touch_no_bank(tmp_path, names, kwargs, message):
    db = protodb.connect(tmp_path / "bank", profile="tiny", device="cpu")
    with pytest.raises(ProtodbError, match=message):
        db.add(names, progress=False, **kwargs)
    with pytest.raises(NotFoundError):
        open_bank(str(tmp_path / "bank"), create=False)


def test_add_again_reports_exists(bank_copy):
    db = protodb.connect(bank_copy, profile="tiny", device="cpu")
    seen = []
    results = db.add(["Grass", "red apple"], n=N_SUPPORT, progress=False, on_result=seen.append)
    assert [r.status for r in results] == ["exists", "exists"]
    assert [r.generated for r in results] == [0, 0]
    assert [r.name for r in seen] == ["Grass", "red apple"]
    assert len(db.history()) == 3


def test_add_with_overrides_makes_a_new_generator(tmp_path):
    db = protodb.connect(tmp_path / "bank", profile="tiny", device="cpu")
    (res,) = db.add(["sky"], n=1, steps=2, guidance=3.0, progress=False)
    assert res.status == "added" and res.generated == 1
    expected = default_generator_config("tiny", steps=2, guidance=3.0)
    assert res.generator_id == expected.id != GEN.id
    assert db.show("sky").sets[0]["generator_id"] == expected.id
    db.create_vocab("s", ["sky"])
    labels = db.vocab("s").segment(make_image(20, 20)).labels
    assert labels.shape == (20, 20) and labels.max() <= 1


def test_add_frees_the_models_it_loaded_and_keeps_those_it_found(tmp_path):
    from protodb.extractors.factory import get_extractor, loaded_extractors, release_models

    release_models()
    db = protodb.connect(tmp_path / "bank", profile="tiny", device="cpu")
    (res,) = db.add(["sky"], n=1, steps=2, progress=False)
    assert res.status == "added" and loaded_extractors() == set()
    ext = get_extractor(EXT, "cpu")  # found loaded: an add that builds nothing keeps it
    (res,) = db.add(["sky"], n=1, steps=2, progress=False)
    assert res.status == "exists" and get_extractor(EXT, "cpu") is ext


# --------------------------------------------------------------------------- segment


def test_vocab_handle_segment_inputs(tiny_bank, tmp_path):
    handle = tiny_bank.db.vocab("v1")
    img = make_image(30, 40, 4)
    Image.fromarray(img).save(tmp_path / "x.png")
    a = handle.segment(img)
    b = handle.segment(str(tmp_path / "x.png"))
    c = handle.segment(tmp_path / "x.png")
    assert a.labels.tobytes() == b.labels.tobytes() == c.labels.tobytes()
    assert handle.segmenter is handle.segmenter
    for bad in (img.astype(np.float32), img[..., 0], img[..., :2]):
        with pytest.raises(ProtodbError, match="image must be uint8"):
            handle.segment(bad)
    with pytest.raises(NotFoundError, match="does not exist"):
        handle.segment(tmp_path / "missing.png")


def test_segment_files(tiny_bank, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    imgs = {"one": make_image(30, 40, 1), "two": make_image(25, 25, 2)}
    for stem, img in imgs.items():
        Image.fromarray(img).save(src / f"{stem}.png")
    seen = []
    out = tmp_path / "out"
    summaries = tiny_bank.db.segment(
        [src], vocab="v1", out=out, progress=False, on_image=seen.append
    )
    assert [Path(s["image"]).name for s in summaries] == ["one.png", "two.png"]
    assert seen == summaries
    for s in summaries:
        stem = Path(s["image"]).stem
        img = imgs[stem]
        assert s["vocab"] == "v1"
        assert (s["height"], s["width"]) == img.shape[:2]
        with Image.open(s["label_png"]) as im:
            assert im.mode == "P" and im.size == (img.shape[1], img.shape[0])
            labels = np.asarray(im)
        expected = tiny_bank.db.vocab("v1").segment(img).labels
        np.testing.assert_array_equal(labels, expected)
        with Image.open(s["overlay_png"]) as ov:  # the image plus a legend panel on the right
            assert ov.size[0] > img.shape[1] and ov.size[1] >= img.shape[0]
        assert Path(s["label_png"]).parent == out


def test_segment_refuses_colliding_names(tiny_bank, tmp_path):
    img = make_image(10, 10)
    Image.fromarray(img).save(tmp_path / "a.png")
    Image.fromarray(img).save(tmp_path / "a.jpg")
    out = tmp_path / "out"
    with pytest.raises(ProtodbError, match="share the name 'a'"):
        tiny_bank.db.segment(
            [tmp_path / "a.png", tmp_path / "a.jpg"], vocab="v1", out=out, progress=False
        )
    assert not out.exists()


def test_segment_errors(tiny_bank, tmp_path):
    img_path = tmp_path / "a.png"
    Image.fromarray(make_image(10, 10)).save(img_path)
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    out = tmp_path / "out"
    with pytest.raises(NotFoundError, match="unknown vocabulary 'zz'"):
        tiny_bank.db.segment([img_path], vocab="zz", out=out, progress=False)
    with pytest.raises(NotFoundError, match="missing.png"):
        tiny_bank.db.segment([tmp_path / "missing.png"], vocab="v1", out=out, progress=False)
    with pytest.raises(ProtodbError, match="cannot read image"):
        tiny_bank.db.segment([img_path, bad], vocab="v1", out=out, progress=False)
    assert not out.exists()


def test_segment_folder_of_50_progress_interrupt_resume(tiny_bank, tmp_path, capsys):
    """50 images: a progress bar on stderr; interrupted after 20, a --skip-existing run redoes
    only the 30 unfinished ones (and one whose summary was never written)."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(50):
        Image.fromarray(make_image(24, 32, i)).save(src / f"img{i:02d}.png")
    out = tmp_path / "out"
    config = QueryConfig(windows=False)

    finished = []

    def stop_after_20(summary):  # Ctrl-C after the 20th image
        finished.append(summary)
        if len(finished) == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny_bank.db.segment([src], vocab="v1", out=out, on_image=stop_after_20, config=config)
    err = capsys.readouterr().err
    assert "segment" in err and "/50" in err
    done = sorted(p.stem for p in out.glob("img??.json"))
    assert len(done) == 20
    (out / "img05.json").unlink()  # as if interrupted between the PNGs and the summary
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("img??.png")}
    summaries = tiny_bank.db.segment(
        [src], vocab="v1", out=out, progress=False, config=config, skip_existing=True
    )
    assert len(summaries) == 50
    redone = [Path(s["image"]).stem for s in summaries if not s["skipped"]]
    assert redone == ["img05"] + [f"img{i:02d}" for i in range(20, 50)]
    for name, t in before.items():
        if name != "img05.png":
            assert (out / name).stat().st_mtime_ns == t
    assert len(list(out.glob("img??.json"))) == 50


def test_segment_glob_patterns_and_options(tiny_bank, tmp_path):
    for name in ("a.png", "b.jpg", "c.png"):
        Image.fromarray(make_image(20, 20, len(name))).save(tmp_path / name)
    out = tmp_path / "out"
    summaries = tiny_bank.db.segment(
        [str(tmp_path / "*.png")], vocab="v1", out=out, progress=False, save_scores=True
    )
    assert [Path(s["image"]).name for s in summaries] == ["a.png", "c.png"]
    scores = np.load(summaries[0]["scores_npy"])
    assert scores.shape == (3, 20, 20) and scores.dtype == np.float32
    with pytest.raises(NotFoundError, match="matches no image"):
        tiny_bank.db.segment([str(tmp_path / "*.gif")], vocab="v1", out=out, progress=False)


def test_default_query_config_per_profile(tiny_bank, tmp_path):
    assert tiny_bank.db.default_query_config().prefilter is False
    assert tiny_bank.db.vocab("v1").config == QueryConfig()
    real = protodb.connect(tmp_path / "b", profile="default")
    assert real.default_query_config().prefilter is True
    assert real.default_query_config(prefilter=False, eta=3).eta == 3


def test_segmenters_are_cached_per_vocabulary_and_config(tiny_bank):
    db = tiny_bank.db
    assert db.vocab("v1").segmenter is db.vocab("v1").segmenter
    other = db.vocab("v1", QueryConfig(windows=False)).segmenter
    assert other is not db.vocab("v1").segmenter


def test_ls_and_show_flag_sets_built_before_a_fix(bank_copy):
    from protodb.bank.schema import sql_str
    from protodb.cli.app import app
    from protodb.extractors.base import ExtractorConfig

    old = ExtractorConfig(name="clip", model="ViT-B-16/openai", layer="keys:10", input_size=512)
    bank = open_bank(str(bank_copy), create=False)
    bank.table("sets").update(
        where=f"class_key = {sql_str('grass')}", values={"extractor_config": old.to_json()}
    )
    db = protodb.connect(bank_copy, profile="tiny", device="cpu")
    assert all(s["known_issue"] is None for s in db.show("red apple").sets)
    assert "QuickGELU" in db.show("grass").sets[0]["known_issue"]
    runner = CliRunner()
    shown = runner.invoke(app, ["--bank", str(bank_copy), "show", "grass"])
    assert shown.exit_code == 0 and "! built with GELU" in shown.output
    listed = runner.invoke(app, ["--bank", str(bank_copy), "ls"])
    assert "1 set(s) to rebuild" in listed.output and listed.output.count("to rebuild") == 1
