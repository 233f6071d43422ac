"""The world's labelled scenes in the VOC layout (protodb.world.dataset)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from protodb.world.classes import CLASS_NAMES
from protodb.world.dataset import make_dataset


def test_dataset_is_made_from_a_seed_in_the_voc_layout(tmp_path):
    a = make_dataset(tmp_path / "a", n=3, seed=5)
    b = make_dataset(tmp_path / "b", n=3, seed=5)
    c = make_dataset(tmp_path / "c", n=3, seed=6)
    assert a.classes == ["background", *CLASS_NAMES]
    ids = (tmp_path / "a" / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    assert ids == a.ids and len(ids) == 3
    for i in ids:
        la = (tmp_path / "a" / "SegmentationClass" / f"{i}.png").read_bytes()
        assert la == (tmp_path / "b" / "SegmentationClass" / f"{i}.png").read_bytes()
        with Image.open(tmp_path / "a" / "SegmentationClass" / f"{i}.png") as im:
            assert im.mode == "P"
            labels = np.asarray(im)
        with Image.open(tmp_path / "a" / "JPEGImages" / f"{i}.jpg") as im:
            assert im.size == (labels.shape[1], labels.shape[0])
        assert set(np.unique(labels)) <= set(range(len(a.classes))) | {255}
        assert (labels == 255).any() and (labels != 255).any()
    assert a.ids == b.ids and a.ids != c.ids
    assert "test world" in (tmp_path / "a" / "test_world.json").read_text()
