"""`protodb refer` on the tiny profile: the whole path end to end, files as segment writes them,
--from pairs.jsonl, --skip-existing, and bad input as one line with a non-zero exit."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from protodb.cli.app import app
from protodb.world.referring import make_referring_set

runner = CliRunner()


def run(tmp, *args):
    return runner.invoke(app, ["--bank", str(tmp / "bank"), "--profile", "tiny", *args])


@pytest.fixture(scope="module")
def refset(tmp_path_factory):
    root = tmp_path_factory.mktemp("refset")
    make_referring_set(root, n=1, seed=0)
    return root


def test_refer_images_writes_mask_overlay_rle_and_summary(refset, tmp_path):
    image = refset / "images" / "refer_0_0000.png"
    out = tmp_path / "out"
    r = run(tmp_path, "refer", str(image), "the yellow star on the left", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    assert "random-weight CLIP" in r.stderr
    (summary,) = [p for p in out.glob("*.json") if not p.name.endswith("_rle.json")]
    s = json.loads(summary.read_text())
    assert s["subject"]["word"] == "star" and s["position"] == "left"
    mask = np.asarray(Image.open(s["mask_png"]))
    assert mask.shape == Image.open(image).size[::-1] and mask.dtype == bool
    assert mask.sum() == s["area"]
    rle = json.loads((out / (summary.stem + "_rle.json")).read_text())
    assert rle[0]["segmentation"]["size"] == list(mask.shape)
    assert Image.open(s["overlay_png"]).size[1] >= mask.shape[0]
    assert len(s["proposals"]) >= 1 and s["chosen"] < len(s["proposals"])
    again = run(
        tmp_path,
        "refer",
        str(image),
        "the yellow star on the left",
        "--out",
        str(out),
        "--skip-existing",
    )
    assert again.exit_code == 0 and "skipped" in again.output


def test_refer_from_pairs_jsonl_generator_only(refset, tmp_path):
    out = tmp_path / "out"
    r = run(
        tmp_path,
        "refer",
        "--from",
        str(refset / "pairs.jsonl"),
        "--out",
        str(out),
        "--generator-only",
        "--position-weight",
        "1",
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.output)
    assert len(data) == 2 and [d["expression"] for d in data] == [
        json.loads(line)["expression"] for line in (refset / "pairs.jsonl").read_text().splitlines()
    ]
    assert all(p["hard"] is None for d in data for p in d["proposals"])
    assert data[0]["config"]["weights"]["position"] == 1.0
    assert data[0]["position"] == "left" and data[1]["position"] == "right"


def test_refer_sam_flags_reach_the_recorded_config(refset, tmp_path):
    image = refset / "images" / "refer_0_0000.png"
    args = ["--source", "sam", "--sam-model", "tiny", "--points-per-side", "2", "--best-mask"]
    args += ["--pred-iou-thresh", "0", "--stability-score-thresh", "0", "--box-nms-thresh", "1"]
    r = run(tmp_path, "refer", str(image), "the star", "--out", str(tmp_path / "o"),
            "--generator-only", "--json", *args)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    (data,) = json.loads(r.output)
    c = data["config"]["proposals"]
    assert (c["source"], c["sam_model"], c["points_per_side"], c["multimask"]) == (
        "sam",
        "tiny",
        2,
        False,
    )
    assert (c["pred_iou_thresh"], c["stability_score_thresh"], c["box_nms_thresh"]) == (0, 0, 1)
    assert all(p["source"].startswith(("sam#", "image")) for p in data["proposals"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["IMG", ""], "expression is empty"),
        (["IMG", "the dog " * 60], "context of 77"),
        (["missing.png", "the dog"], "does not exist"),
        (["BAD", "the dog"], "cannot read image"),
        (["the dog"], "give IMAGE... and then the EXPRESSION"),
        (["--from", "missing.jsonl"], "does not exist"),
        (["--from", "BADJSONL"], "must be a JSON object"),
        (["IMG", "the dog", "--source", "grabcut"], "proposal source 'grabcut'"),
        (["IMG", "the dog", "--points-per-side", "0"], "--points-per-side 0 must be >= 1"),
        (["IMG", "the dog", "--stability-score-thresh", "2"], "--stability-score-thresh 2.0"),
        (["IMG", "the dog", "--subject", "cat"], "not a word of the expression"),
        (["IMG", "the dog", "--subject-method", "parser"], "subject method 'parser'"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(refset, tmp_path, args, needle):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    badjsonl = tmp_path / "bad.jsonl"
    badjsonl.write_text('{"image": "x.png"}\n')
    subst = {
        "IMG": str(refset / "images" / "refer_0_0000.png"),
        "BAD": str(bad),
        "BADJSONL": str(badjsonl),
    }
    r = run(tmp_path, "refer", *[subst.get(a, a) for a in args], "--out", str(tmp_path / "o"))
    assert r.exit_code != 0
    assert needle in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr + r.output
    assert not list((tmp_path / "o").glob("*.json")) if (tmp_path / "o").exists() else True


def test_eval_task_refer_on_the_referring_set(refset, tmp_path):
    report = tmp_path / "rep.json"
    r = run(tmp_path, "eval", "--task", "refer", "--dataset", "folder", "--root", str(refset),
            "--generator-only", "--report", str(report), "-q")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "mIoU" in r.output and "oIoU" in r.output and "Pr@0.9" in r.output
    data = json.loads(report.read_text())
    assert data["n"] == 2 and len(data["rows"]) == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--task", "refer", "--dataset", "refcoco", "--root", "PICKLEDIR"], "original pickle"),
        (["--task", "refer", "--dataset", "refcoco", "--root", "BADJSONDIR"], "not readable JSON"),
        (["--task", "refer", "--dataset", "refclef", "--root", "PICKLEDIR"], "unknown"),
        (["--task", "nope", "--dataset", "folder", "--root", "PICKLEDIR"], "--task 'nope'"),
        (["--dataset", "folder", "--root", "PICKLEDIR"], "--vocab is required"),
    ],
)
def test_eval_refer_bad_input(tmp_path, args, needle):
    pickles = tmp_path / "p"
    pickles.mkdir()
    (pickles / "refs(unc).p").write_bytes(b"\x80\x04N.")
    badjson = tmp_path / "j"
    badjson.mkdir()
    (badjson / "refs(unc).json").write_text("[{")
    (badjson / "instances.json").write_text("{}")
    subst = {"PICKLEDIR": str(pickles), "BADJSONDIR": str(badjson)}
    r = run(tmp_path, "eval", *[subst.get(a, a) for a in args])
    assert r.exit_code != 0 and needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr + r.output
