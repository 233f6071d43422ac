"""protodb synth end to end on the tiny profile: layout, readers, pycocotools, determinism,
resume, the agreement filter, one-line errors and `protodb eval` on the written dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from protodb.cli.app import app

runner = CliRunner()


def cli(bank, *args):
    return runner.invoke(app, ["--bank", str(bank), "--profile", "tiny", *args])


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.parent.name not in ("images", "labels")
    }


def test_layout_and_records(made):
    out, report = made
    assert report.made == 2 and report.accepted == 2 and report.skipped == 0
    ids = (out / "ImageSets/Segmentation/val.txt").read_text().split()
    assert sorted(ids) == sorted(report.ids) and len(ids) == 2
    assert (out / "classes.txt").read_text().split("\n")[:2] == ["red apple", "grass"]
    for i in ids:
        assert (out / "JPEGImages" / f"{i}.jpg").exists()
        with Image.open(out / "SegmentationClass" / f"{i}.png") as im:
            assert im.mode == "P" and im.size == (64, 64)
        rec = json.loads((out / "meta" / f"{i}.json").read_text())
        assert rec["accepted"] and rec["prompt"] == "a red apple on grass"
        assert rec["generator_config"]["model"] == "tiny" and rec["vocab"] == "v1"
        assert [e["name"] for e in rec["entities"]] == ["red apple", "grass"]
        assert 0.0 <= rec["agreement"] <= 1.0 and isinstance(rec["noise_seed"], int)


def test_loads_with_pycocotools_and_matches_the_label_pngs(made):
    from pycocotools.coco import COCO

    out, _ = made
    coco = COCO(str(out / "annotations.json"))
    assert sorted(c["name"] for c in coco.loadCats(coco.getCatIds())) == ["grass", "red apple"]
    for img in coco.loadImgs(coco.getImgIds()):
        labels = np.asarray(Image.open(out / "SegmentationClass" / f"{img['synth_id']}.png"))
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))
        assert len(anns) == 2
        for a in anns:
            np.testing.assert_array_equal(
                coco.annToMask(a).astype(bool), labels == a["category_id"]
            )


@pytest.mark.parametrize("reader", ["folder", "voc"])
def test_loads_with_protodbs_readers(made, reader):
    from protodb.evaluation.datasets import open_dataset

    out, report = made
    ds = open_dataset(reader, out)
    assert sorted(s.id for s in ds.samples) == sorted(report.ids)
    image, labels = ds.load(ds.samples[0])
    assert image.shape == (64, 64, 3) and labels.shape == (64, 64)
    if reader == "folder":
        assert ds.classes == ["background", "red apple", "grass"]


def test_protodb_eval_runs_on_the_dataset(made, tiny_bank):
    out, _ = made
    res = cli(
        tiny_bank.path,
        "eval",
        "--dataset",
        "folder",
        "--root",
        str(out),
        "--vocab",
        "v1",
        "-q",
        "--json",
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_images"] == 2


def test_resume_remakes_only_what_is_missing_with_the_same_bytes(made, tiny_bank, tmp_path):
    out, report = made
    copy = tmp_path / "ds"
    shutil.copytree(out, copy, symlinks=True)
    gone = report.ids[0]
    for p in (f"meta/{gone}.json", f"JPEGImages/{gone}.jpg", f"SegmentationClass/{gone}.png"):
        (copy / p).unlink()
    again = tiny_bank.db.synth(vocab="v1", out=copy, per_class=1, progress=False)
    assert again.made == 1 and again.skipped == 1
    assert files(copy) == files(out)  # the image made alone is the image made in a batch


def test_min_agreement_refuses_and_remembers(tiny_bank, tmp_path):
    res = cli(
        tiny_bank.path,
        "synth",
        "--vocab",
        "v1",
        "--out",
        str(tmp_path / "d"),
        "--prompt",
        "a red apple on grass",
        "--min-agreement",
        "1",
        "-q",
    )
    assert res.exit_code == 0, res.output
    assert "1 images made (0 kept, 1 below --min-agreement)" in res.stdout
    assert (tmp_path / "d/ImageSets/Segmentation/val.txt").read_text() == ""
    assert not list((tmp_path / "d/JPEGImages").iterdir())
    rec = json.loads(next((tmp_path / "d/meta").glob("*.json")).read_text())
    assert rec["accepted"] is False and rec["agreement"] < 1
    res = cli(
        tiny_bank.path,
        "synth",
        "--vocab",
        "v1",
        "--out",
        str(tmp_path / "d"),
        "--prompt",
        "a red apple on grass",
        "--min-agreement",
        "1",
        "-q",
    )
    assert "0 images made" in res.stdout and "1 already there" in res.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--vocab", "nope", "--per-class", "1"], "unknown vocabulary 'nope'"),
        (["--vocab", "v1", "--prompt", " "], "--prompt is empty"),
        (["--vocab", "v1", "--prompt", "a blue cube"], "names no class of the vocabulary"),
        (["--vocab", "v1", "--per-class", "0"], "--per-class 0 must be >= 1"),
        (["--vocab", "v1", "--per-class", "-2"], "--per-class -2 must be >= 1"),
        (["--vocab", "v1"], "give --per-class N"),
        (["--vocab", "v1", "--per-class", "1", "--prompt", "grass"], "not both"),
        (["--vocab", "v1", "--per-class", "1", "--masks", "box"], "--masks 'box' is unknown"),
        (["--vocab", "v1", "--per-class", "1", "--min-agreement", "2"], "must be from 0 to 1"),
        (["--vocab", "v1", "--per-class", "1", "--proposals", "x"], "unknown mask source 'x'"),
        (["--vocab", "v1", "--per-class", "1", "--masks", "grounding"], "needs --grounding"),
    ],
)
def test_bad_input_is_one_line(tiny_bank, tmp_path, args, message):
    res = cli(tiny_bank.path, "synth", "--out", str(tmp_path / "d"), *args)
    assert res.exit_code != 0
    lines = [ln for ln in res.stderr.splitlines() if not ln.startswith("profile tiny:")]
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert "Traceback" not in res.output
    assert not (tmp_path / "d" / "JPEGImages").exists()


def test_out_holding_something_else_is_refused(tiny_bank, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("mine")
    res = cli(
        tiny_bank.path, "synth", "--vocab", "v1", "--per-class", "1", "--out", str(tmp_path / "d")
    )
    assert res.exit_code != 0 and "is not empty and holds no synthetic dataset" in res.stderr


def test_other_settings_into_the_same_out_are_refused(made, tiny_bank):
    out, _ = made
    res = cli(
        tiny_bank.path,
        "synth",
        "--vocab",
        "v1",
        "--per-class",
        "1",
        "--seed",
        "3",
        "--out",
        str(out),
    )
    assert res.exit_code != 0 and "made with other settings" in res.stderr


def test_prompts_from_a_file_with_vocab_masks(tiny_bank, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("# two lines, one prompt\na red apple on grass\na red apple on grass\n")
    res = cli(tiny_bank.path, "synth", "--vocab", "v1", "--from", str(prompts), "--masks",
              "vocab", "--out", str(tmp_path / "d"), "-q", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["made"] == 1  # the same key is one image
    (meta,) = (tmp_path / "d" / "meta").glob("*.json")
    rec = json.loads(meta.read_text())
    assert rec["masks"] == "vocab" and rec["slot"] == "prompt"
    labels = np.asarray(Image.open(tmp_path / "d" / "SegmentationClass" / f"{rec['id']}.png"))
    image = np.asarray(Image.open(tmp_path / "d" / "JPEGImages" / f"{rec['id']}.jpg"))
    assert labels.shape == image.shape[:2]
    areas = rec["areas"]["vocab"]
    assert [int((labels == k).sum()) for k in (1, 2)] == areas
