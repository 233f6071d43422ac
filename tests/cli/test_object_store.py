"""The CLI on a bank on the emulated S3 (moto): add, vocab create, ls, history, --at, segment,
each as on a local bank."""

from __future__ import annotations

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from protodb.cli.app import app

runner = CliRunner()


def run(bank: str, *args: str):
    result = runner.invoke(app, ["--bank", bank, "--profile", "tiny", *args])
    assert result.exit_code == 0, (result.output, result.stderr)
    return result


def test_cli_add_vocab_segment_history_on_s3(s3_server, tmp_path):
    bank = s3_server.uri()
    run(bank, "add", "grass", "--n", "1", "-q")
    again = run(bank, "add", "grass", "--n", "1", "-q")  # resumable: nothing regenerated
    assert "already in the bank" in again.output and "nothing generated" in again.output
    run(bank, "vocab", "create", "v1", "grass")
    assert "grass" in run(bank, "ls").output
    ops = [ln.split("\t")[2] for ln in run(bank, "history").output.strip().splitlines()]
    assert ops == ["add", "vocab create"]
    assert "v1" not in run(bank, "--at", "1", "vocab", "ls").output
    image = tmp_path / "photo.png"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(image)
    run(bank, "segment", str(image), "--vocab", "v1", "--out", str(tmp_path / "out"))
    with Image.open(tmp_path / "out" / "photo.png") as labels:
        assert labels.size == (40, 30)
    assert "_protodb_commit.lock" not in s3_server.keys(bank)
