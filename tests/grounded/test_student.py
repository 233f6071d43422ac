"""The student: distilled from a synth dataset, saved in transformers' format, used by
`protodb segment --student`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from protodb.cli.app import app
from protodb.grounded.student import Student

runner = CliRunner()


def cli(bank, *args):
    return runner.invoke(app, ["--bank", str(bank), "--profile", "tiny", *args])


@pytest.fixture(scope="module")
def student_bank(tiny_bank, tmp_path_factory):
    """A copy of the session bank: distill records its student there (a history row)."""
    bank = tmp_path_factory.mktemp("student-bank") / "bank"
    shutil.copytree(tiny_bank.path, bank)
    return bank


@pytest.fixture(scope="module")
def student(made, student_bank, tmp_path_factory):
    out = tmp_path_factory.mktemp("student") / "s"
    data, _ = made
    res = cli(student_bank, "distill", "--vocab", "v1", "--data", str(data), "--out", str(out),
              "--steps", "30", "--batch", "2", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    return out, json.loads(res.stdout)


def test_the_bank_records_which_student_came_from_which_vocabulary(student, student_bank):
    import hashlib

    import protodb

    out, _ = student
    entry = protodb.connect(student_bank, profile="tiny").history()[-1]
    assert entry.op == "distill"
    assert entry.detail["vocab"] == "v1" and entry.detail["student"] == str(out.resolve())
    weights = (out / "model.safetensors").read_bytes()
    assert entry.detail["student_sha256"] == hashlib.sha256(weights).hexdigest()
    record = json.loads((out / "student.json").read_text())
    assert entry.detail["vocab_bank_version"] == record["vocab_bank_version"]


def test_distill_fits_and_saves_in_transformers_format(student, tiny_bank):
    out, rep = student
    assert rep["images"] == 2 and rep["steps"] == 30
    assert rep["loss_last"] < rep["loss_first"]
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    record = json.loads((out / "student.json").read_text())
    assert record["vocab"] == "v1" and record["classes"] == ["red apple", "grass"]
    assert record["vocab_bank_version"] == tiny_bank.vocab.bank_version
    s = Student.load(out)
    labels = s.segment(np.zeros((40, 56, 3), np.uint8))
    assert labels.shape == (40, 56) and labels.dtype == np.uint8 and labels.max() <= 2


def test_segment_with_the_student(student, made, tiny_bank, tmp_path):
    out, _ = student
    data, report = made
    res = cli(tiny_bank.path, "segment", str(data / "JPEGImages"), "--vocab", "v1",
              "--student", str(out), "--out", str(tmp_path / "seg"), "-q", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    summaries = json.loads(res.stdout)["images"]
    assert len(summaries) == 2 and all(
        s["classes"][1:] == ["red apple", "grass"] for s in summaries
    )
    assert all((tmp_path / "seg" / f"{i}.png").exists() for i in report.ids)
    assert "pre-filter" not in res.stderr  # a student has no query options


def test_student_of_another_vocabulary_is_refused(student, tiny_bank, made, tmp_path):
    out, _ = student
    data, _ = made
    res = cli(tiny_bank.path, "segment", str(data / "JPEGImages"), "--vocab", "v2",
              "--student", str(out), "--out", str(tmp_path / "seg"))  # fmt: skip
    assert res.exit_code != 0 and "distilled from vocabulary 'v1', not 'v2'" in res.stderr


def test_distill_needs_a_synth_dataset(tiny_bank, tmp_path):
    res = cli(tiny_bank.path, "distill", "--vocab", "v1", "--data", str(tmp_path),
              "--out", str(tmp_path / "s"))  # fmt: skip
    assert res.exit_code != 0 and "is no synthetic dataset" in res.stderr


# ---------------------------------------------------------------- eval --student, ZS3


def test_eval_student_reports_miou_and_the_zs3_figures(student, made, tiny_bank):
    from protodb.evaluation.zs3 import harmonic

    out, _ = student
    data, _ = made
    res = cli(tiny_bank.path, "eval", "--dataset", "folder", "--root", str(data),
              "--student", str(out), "--unseen", "grass", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["n_images"] == 2 and rep["vocab"] == "v1"
    assert rep["config"]["student"] == str(out.resolve()) and rep["config"]["steps"] == 30
    iou = {c["name"]: c["iou"] or 0.0 for c in rep["classes"]}
    assert list(iou) == ["background", "red apple", "grass"]
    assert rep["miou"] == pytest.approx(sum(iou.values()) / 3)
    z = rep["zs3"]
    assert z["seen"] == ["background", "red apple"] and z["unseen"] == ["grass"]
    s, u = (iou["background"] + iou["red apple"]) / 2, iou["grass"]
    assert z["miou_seen"] == pytest.approx(s) and z["miou_unseen"] == pytest.approx(u)
    assert z["hiou"] == pytest.approx(harmonic(s, u))
    # the same student, labels and meter: the library call gives the same figures
    lib = tiny_bank.db.evaluate("folder", data, student=out, unseen=["grass"], progress=False)
    assert lib.miou == pytest.approx(rep["miou"]) and lib.zs3.hiou == pytest.approx(z["hiou"])
    text = cli(tiny_bank.path, "eval", "--dataset", "folder", "--root", str(data),
               "--student", str(out), "--unseen", "grass", "-q")  # fmt: skip
    assert text.exit_code == 0, text.output
    assert f"ZS3: mIoU seen {100 * s:.1f} (2 classes), unseen {100 * u:.1f}" in text.stdout
    assert f"hIoU {100 * harmonic(s, u):.1f}" in text.stdout and "student" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--unseen", "horse"], "error: --unseen 'horse' names 'horse', which is not a class"),
        (["--unseen", ","], "error: --unseen ',' names no class"),
        (["--unseen", "red apple,grass"], "leaves no seen class"),
        (["--ablate", "bg"], "a student has no query engine to ablate"),
        (["--vocab", "v2"], "distilled from vocabulary 'v1', not 'v2'"),
    ],
)
def test_eval_student_bad_input_is_one_line(student, made, tiny_bank, args, message):
    out, _ = student
    data, _ = made
    res = cli(tiny_bank.path, "eval", "--dataset", "folder", "--root", str(data),
              "--student", str(out), *args)  # fmt: skip
    assert res.exit_code != 0 and message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output


def test_eval_student_on_a_world_dataset_of_other_classes(student, tiny_bank, tmp_path):
    from protodb.world.dataset import make_dataset

    out, _ = student
    make_dataset(tmp_path / "w", n=1, seed=0)
    res = cli(tiny_bank.path, "eval", "--dataset", "world", "--root", str(tmp_path / "w"),
              "--student", str(out))  # fmt: skip
    assert res.exit_code != 0 and len(res.stderr.strip().splitlines()) == 1
    assert "the student's classes do not match dataset 'world'" in res.stderr
    assert "distill a student from a vocabulary over the dataset's classes" in res.stderr


def test_eval_student_on_the_world_dataset_with_a_split(tiny_bank, tmp_path):
    """A student over the world's classes (SegFormer as distill builds it, initial weights) on
    world scenes: the per-class table covers every label and --unseen splits it."""
    import torch
    from transformers import SegformerForSemanticSegmentation

    from protodb.grounded.student import student_config
    from protodb.profiles import test_world
    from protodb.world.dataset import make_dataset

    names = list(test_world().class_names)
    torch.manual_seed(0)
    model = SegformerForSemanticSegmentation(student_config(1 + len(names)))
    Student(model, names, {"classes": names, "vocab": "world"}).save(tmp_path / "s")
    make_dataset(tmp_path / "w", n=2, seed=0)
    res = cli(tiny_bank.path, "eval", "--dataset", "world", "--root", str(tmp_path / "w"), "--json",
              "--student", str(tmp_path / "s"), "--unseen", "water,orange triangle")  # fmt: skip
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["test_world"] and rep["n_images"] == 2 and len(rep["classes"]) == 1 + len(names)
    z = rep["zs3"]
    assert z["unseen"] == [n for n in names if n in ("orange triangle", "water")]  # label order
    assert len(z["seen"]) == len(names) - 1 and z["seen"][0] == "background"
    for key in ("miou_seen", "miou_unseen", "hiou"):
        assert 0.0 <= z[key] <= 1.0
