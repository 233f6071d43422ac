"""The world extractor: shapes, meaningful matching, stuff-like bg (protodb.world.extractor)."""

from __future__ import annotations

import numpy as np

from protodb.extractors.factory import (
    default_extractor_config,
    get_extractor,
)
from protodb.names import class_key
from protodb.world.classes import CLASS_NAMES, CLASSES, STUFF, THINGS
from protodb.world.draw import texture


def test_extractor_shapes_and_matching_means_something():
    ext = get_extractor(default_extractor_config("world", "world"))
    rng = np.random.default_rng(0)
    kinds = list(CLASSES)
    patches = np.stack([texture(c, (64, 64), rng) for c in kinds for _ in range(2)]).astype(
        np.uint8
    )
    feats = ext.extract(patches).numpy()
    assert feats.dtype == np.float32 and feats.shape == (len(patches), 8, 16, 16)
    np.testing.assert_array_equal(feats, ext.extract(patches).numpy())
    v = feats.mean((2, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    first, second = v[0::2], v[1::2]
    sims = first @ second.T  # [class, class]: an independent draw of each texture
    assert (sims.argmax(1) == np.arange(len(kinds))).all()
    assert np.diag(sims).min() > 0.95


def test_thing_bg_prototypes_are_near_copies_of_stuff_fg(world):
    """What makes stuff filtering matter in the world (REFERENCE 1.8, threshold 0.85)."""
    from protodb.query.assemble import assemble

    handle = world.db.vocab("world")
    (p,) = assemble(world.db.bank, handle.info)
    stuff_labels = [1 + CLASS_NAMES.index(c.name) for c in STUFF]
    stuff_fg = p.vectors[np.isin(p.owner, stuff_labels)]
    thing_keys = {class_key(c.name) for c in THINGS}
    thing_bg = [
        i for i, r in enumerate(p.rows) if r["polarity"] == "bg" and r["class_key"] in thing_keys
    ]
    near = (p.vectors[thing_bg] @ stuff_fg.T).max(1) > 0.85
    assert 0.3 < near.mean() < 0.95  # many stolen stuff pixels, some real clutter background
    assert world.db.show("grass").kind == "stuff"
    assert world.db.show("red disc").kind == "thing"
