"""The test world's referring set (protodb.world.referring)."""

import json

import numpy as np
from PIL import Image

from protodb.world.referring import draw_referring_scene, make_referring_set


def test_each_scene_refers_to_both_things_with_their_masks():
    relations = set()
    for k in range(30):
        image, refs = draw_referring_scene(np.random.default_rng([1, k]))
        assert image.shape == (96, 128, 3) and len(refs) == 2
        a, b = refs
        assert a.expression != b.expression
        assert a.mask.any() and b.mask.any() and not (a.mask & b.mask).any()
        for ref, other in ((a, b), (b, a)):
            relations.add(ref.relation)
            assert ref.expression.startswith(
                f"the {'' if ref.relation not in ('big', 'small') else ref.relation + ' '}"
            )
            assert ref.subject in ref.expression
            cx = np.nonzero(ref.mask)[1].mean()
            ox = np.nonzero(other.mask)[1].mean()
            if ref.relation == "left":
                assert cx < ox and ref.expression.endswith("on the left")
            if ref.relation == "right":
                assert cx > ox and ref.expression.endswith("on the right")
            if ref.relation == "big":
                assert ref.mask.sum() > other.mask.sum()
    assert relations == {"left", "right", "big", "small", "class"}


def test_the_set_is_written_from_a_seed(tmp_path):
    pairs = make_referring_set(tmp_path / "a", n=3, seed=4)
    again = make_referring_set(tmp_path / "b", n=3, seed=4)
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert len(rows) == 6 and pairs.read_text() == again.read_text()
    for r in rows:
        with Image.open(tmp_path / "a" / r["mask"]) as m:
            assert np.asarray(m).any()
        assert (tmp_path / "a" / r["image"]).read_bytes() == (
            tmp_path / "b" / r["image"]
        ).read_bytes()
    assert json.loads((tmp_path / "a" / "referring_set.json").read_text())["seed"] == 4
