"""A synthetic dataset shared by the synth tests: one composition per class of the session
bank's vocabulary v1 (red apple, grass) on the tiny profile: 2 images."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def made(tiny_bank, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    report = tiny_bank.db.synth(vocab="v1", out=out, per_class=1, progress=False)
    return out, report
