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
    summaries = json.loads(res.stdout)
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
