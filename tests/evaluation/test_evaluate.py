"""mIoU accumulation (REFERENCE 1.9), label mapping, ablations, and the offline world's figures."""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from protodb.errors import ProtodbError
from protodb.evaluation.datasets import Dataset, open_dataset
from protodb.evaluation.evaluate import (
    MIoU,
    ablate,
    ablated_config,
    confusion,
    evaluate,
    label_map,
    parse_ablations,
)
from protodb.query.config import QueryConfig

# The full pipeline's mIoU on the offline test world (protodb world bank --n 8 --seed 0; protodb
# world dataset --images 24 --seed 0), as stated in the README.
WORLD_MIOU = 87.5
README = Path(__file__).resolve().parents[2] / "README.md"


def test_miou_equals_hand_computation():
    # 4 classes: 0 background, 1, 2, and 3 which appears in neither prediction nor truth.
    gt_a = np.array([[0, 0, 1, 1], [0, 255, 1, 2]], np.uint8)
    pr_a = np.array([[0, 1, 1, 1], [0, 2, 0, 2]], np.uint8)
    gt_b = np.array([[2, 2, 255]], np.uint8)
    pr_b = np.array([[2, 0, 1]], np.uint8)  # the 1 sits on an ignored pixel
    m = MIoU(4)
    m.update(pr_a, gt_a)
    m.update(pr_b, gt_b)
    # Summed over both images, 255 ignored:
    # class 0: I = 2, |gt| = 3, |pred| = 4 -> U = 5  -> 2/5
    # class 1: I = 2, |gt| = 3, |pred| = 3 -> U = 4  -> 2/4
    # class 2: I = 2, |gt| = 3, |pred| = 2 -> U = 3  -> 2/3
    # class 3: I = 0, U = 0 -> NaN, counted as 0 in the mean over all 4 classes
    hand = (2 / 5 + 2 / 4 + 2 / 3 + 0) / 4
    assert m.intersection.tolist() == [2, 2, 2, 0]
    assert m.union.tolist() == [5, 4, 3, 0]
    iou = m.iou()
    assert np.isnan(iou[3])
    np.testing.assert_allclose(iou[:3], [2 / 5, 2 / 4, 2 / 3])
    assert m.miou() == pytest.approx(hand)
    # accumulated, not averaged per image (per-image means would differ)
    per_image = []
    for p, g in ((pr_a, gt_a), (pr_b, gt_b)):
        one = MIoU(4)
        one.update(p, g)
        per_image.append(one.miou())
    assert np.mean(per_image) != pytest.approx(hand)
    assert m.pixel_accuracy() == pytest.approx(6 / 9)


def test_confusion_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        confusion(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), 3)
    with pytest.raises(ValueError, match="out of range"):
        confusion(np.full((2, 2), 5, np.uint8), np.zeros((2, 2), np.uint8), 3)
    all_ignored = confusion(np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8), 3)
    assert all_ignored.sum() == 0


def _dataset(classes):
    return Dataset("folder", Path("."), ["background", *classes])


def test_label_map_by_name_in_any_order():
    lut = label_map(["Dog", "cat"], _dataset(["cat", "dog"]))
    assert lut[:3].tolist() == [0, 2, 1]


def test_label_map_names_missing_and_extra_classes():
    expect = r"missing bird.*not in the dataset: cow.*--from-dataset"
    with pytest.raises(ProtodbError, match=expect):
        label_map(["cat", "cow"], _dataset(["cat", "bird"]))


def test_ablated_configs():
    base = QueryConfig()
    assert ablated_config("bg", base).background is False
    assert ablated_config("instances", base).levels == ("class", "part")
    assert ablated_config("parts", base).levels == ("class", "instance")
    assert ablated_config("stuff", base).stuff_filter is False
    assert isinstance(ablated_config("prefilter", QueryConfig(prefilter=False)), str)
    assert ablated_config("prefilter", QueryConfig(prefilter=True)).prefilter is False
    assert "only level" in ablated_config("parts", QueryConfig(levels=("part",)))
    assert parse_ablations("bg, stuff,bg") == ["bg", "stuff"]
    with pytest.raises(ProtodbError, match="--ablate 'bg,colour'"):
        parse_ablations("bg,colour")


# ---------------------------------------------------------------------- the offline test world


def test_world_full_pipeline_reaches_readme_miou(world):
    report = world.db.evaluate("world", world.data, vocab="world", progress=False)
    assert report.test_world and report.n_images == 24
    assert 100 * report.miou >= WORLD_MIOU - 0.5
    stated = re.search(r"test world.*?mIoU\D{0,20}(\d+\.\d)", README.read_text(), re.S | re.I)
    assert stated and float(stated.group(1)) == WORLD_MIOU
    names = [c.name for c in report.classes]
    assert names[0] == "background" and "grass" in names and "red disc" in names
    assert all(c.iou is not None and c.iou > 0.3 for c in report.classes)


def test_world_limit_and_report_json(world):
    report = world.db.evaluate("world", world.data, vocab="world", limit=3, progress=False)
    data = report.to_dict()
    assert data["n_images"] == 3 and len(data["classes"]) == 9
    assert data["config"] == asdict(world.db.default_query_config()) and data["notes"] == []
    asked = QueryConfig(windows=False, eta=4)
    report = world.db.evaluate("world", world.data, vocab="world", limit=1, config=asked)
    assert report.config == asdict(asked)  # recorded as it ran
    assert report.config_line().startswith("windows off, pre-filter off, background prototypes on")
    with pytest.raises(ProtodbError, match="no CLIP for the pre-filter.*--no-prefilter"):
        world.db.evaluate(
            "world", world.data, vocab="world", limit=1, config=replace(asked, prefilter=True)
        )


def test_eval_and_segment_give_identical_labels_on_the_world(world, tmp_path):
    """Must show (issue 27): the same images and defaults give byte-identical label maps."""
    ds = open_dataset("world", world.data, limit=3)
    seen = {}
    report = evaluate(
        world.db, "world", ds, progress=False, on_image=lambda s, lab: seen.update({s.id: lab})
    )
    assert report.config == asdict(world.db.default_query_config())
    world.db.segment(
        [str(s.image) for s in ds.samples], vocab="world", out=tmp_path, progress=False
    )
    for s in ds.samples:
        png = np.asarray(Image.open(tmp_path / f"{s.image.stem}.png"))
        assert seen[s.id].dtype == np.uint8 and seen[s.id].tobytes() == png.tobytes()


@pytest.fixture
def prefilter_profile(monkeypatch):
    """The tiny profile with the pre-filter on by default (as the default profile has it; its
    real CLIP is not here): evaluation must take that default, as segment does."""
    from protodb.profiles import PROFILES, get_profile

    name = "tiny-prefilter"
    profile = replace(get_profile("tiny"), name=name, prefilter=True, prefilter_reason="test")
    monkeypatch.setitem(PROFILES._items, name, profile)
    return name


def _tiny_dataset(root: Path, n: int = 2) -> Path:
    from conftest import CLASSES, make_image

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for i in range(n):
        labels = np.zeros((40, 56), np.uint8)
        labels[10:30, 8:30], labels[30:] = 1, 2
        Image.fromarray(make_image(40, 56, seed=i)).save(root / "images" / f"im{i}.png")
        Image.fromarray(labels, mode="L").save(root / "labels" / f"im{i}.png")
    return root


def test_eval_takes_the_profiles_prefilter_default_as_segment(
    tiny_bank, prefilter_profile, tmp_path
):
    """Issue 27 item 1: `eval` ran without the pre-filter where `segment` had it on; and
    `--ablate prefilter` must compare against a base run with it on."""
    import protodb

    db = protodb.connect(tiny_bank.path, profile=prefilter_profile, device="cpu")
    ds = open_dataset("folder", _tiny_dataset(tmp_path / "data"))
    seen = {}
    report = evaluate(
        db, "v1", ds, progress=False, on_image=lambda s, lab: seen.update({s.id: lab})
    )
    assert report.config["prefilter"] is True
    assert report.config == asdict(db.default_query_config())
    handle = db.vocab("v1")
    for s in ds.samples:
        assert np.array_equal(seen[s.id], handle.segment(s.image).labels)
    rows = ablate(db, "v1", ds, ["prefilter"], progress=False).rows
    assert rows[0].miou is not None and rows[0].config["prefilter"] is False


def test_ablation_removing_stuff_filtering_lowers_miou_on_scenes_with_stuff(world):
    ds = open_dataset("world", world.data)
    with_stuff = [s for s in ds.samples if _has_stuff(ds, s)]
    assert len(with_stuff) >= 10
    ds.samples = with_stuff
    report = ablate(world.db, "world", ds, ["stuff"], progress=False)
    assert report.rows[0].delta < -0.05


def _has_stuff(ds, sample) -> bool:
    from protodb.evaluation.datasets import read_labels
    from protodb.world.classes import CLASS_NAMES, STUFF

    stuff = [1 + CLASS_NAMES.index(c.name) for c in STUFF]
    return bool(np.isin(read_labels(sample.label), stuff).any())


def test_evaluate_refuses_a_vocabulary_of_other_classes(world):
    from protodb.world.classes import THINGS

    if "things" not in {v.name for v in world.db.vocabs()}:
        world.db.create_vocab("things", [c.name for c in THINGS])
    ds = open_dataset("world", world.data, limit=1)
    with pytest.raises(ProtodbError, match="do not match dataset 'world'.*missing grass"):
        evaluate(world.db, "things", ds, progress=False)
