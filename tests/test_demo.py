"""The demo: without model weights it runs in the offline test world and says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from protodb.demo import real_models_cached, run_demo


def test_demo_without_weights_runs_the_labelled_test_world(tmp_path):
    if real_models_cached():
        pytest.skip("real weights are cached here; the demo would use them")
    said: list[str] = []
    report = run_demo(tmp_path / "demo", n=4, device="cpu", say=said.append)
    assert report.profile == "world-learned" and "offline TEST WORLD" in said[0]
    assert len(report.images) == 4
    for s in report.images:
        assert Path(s["label_png"]).exists() and Path(s["overlay_png"]).exists()
    assert report.miou is not None and report.miou > 0.15  # a real segmentation, not noise
