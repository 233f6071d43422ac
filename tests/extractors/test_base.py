"""The extractor contract: config ids, grid, preprocessing, extraction (protodb.extractors.base)."""

import hashlib
import json
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from conftest import make_image

from protodb.extractors.base import IMAGENET_MEAN, IMAGENET_STD, ExtractorConfig
from protodb.extractors.factory import default_extractor_config, get_extractor


@pytest.fixture(scope="module")
def extractor():
    return get_extractor(default_extractor_config("tiny"), "cpu")


def test_config_id_stable_and_field_sensitive():
    cfg = default_extractor_config("tiny")
    digest = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()
    assert cfg.id == f"dinov2-{digest[:12]}"
    assert ExtractorConfig.from_json(cfg.to_json()) == cfg
    ids = {cfg.id}
    for change in ({"input_size": 32}, {"store_dtype": "float32"}, {"layer": "x"}):
        ids.add(replace(cfg, **change).id)
    assert len(ids) == 4


@pytest.mark.parametrize(
    ("hw", "expected"),
    [((64, 64), (64, 64)), ((50, 70), (64, 88)), ((200, 100), (128, 64)), ((3, 5), (64, 104))],
)
def test_grid_size(extractor, hw, expected):
    assert extractor.grid_size(*hw) == expected


def test_preprocess_normalises_by_hand(extractor):
    img = np.zeros((2, 64, 64, 3), np.uint8)
    img[..., 0] = 255
    img[1, ..., 2] = 51
    x = extractor.preprocess(img)
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
    expected = [(1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], -IMAGENET_MEAN[1] / IMAGENET_STD[1]]
    assert torch.allclose(x[:, 0], torch.tensor(expected[0]), atol=1e-5)
    assert torch.allclose(x[:, 1], torch.tensor(expected[1]), atol=1e-5)
    assert torch.allclose(x[1, 2], torch.tensor((0.2 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((1, 8, 8, 3), np.float32),
        np.zeros((1, 8, 8, 4), np.uint8),
        np.zeros((8, 8, 3), np.uint8),
    ],
)
def test_preprocess_rejects_bad_input(extractor, bad):
    with pytest.raises(ValueError, match="expected uint8"):
        extractor.preprocess(bad)


def test_extract_shapes_and_cls_dropped(extractor):
    imgs = np.stack([make_image(64, 64, 0), make_image(64, 64, 1)])
    feats = extractor.extract(imgs)
    assert feats.shape == (2, 32, 8, 8) and feats.dtype == torch.float32
    assert feats.device.type == "cpu"
    with torch.no_grad():
        tokens = extractor.net(pixel_values=extractor.preprocess(imgs)).last_hidden_state
    assert tokens.shape[1] == 1 + 64
    # row-major patch order, CLS (token 0) dropped
    assert torch.allclose(feats[:, :, 0, 0], tokens[:, 1], atol=1e-5)
    assert torch.allclose(feats[:, :, 0, 1], tokens[:, 2], atol=1e-5)
    assert torch.allclose(feats[:, :, 1, 0], tokens[:, 9], atol=1e-5)
    assert torch.allclose(feats[:, :, 7, 7], tokens[:, 64], atol=1e-5)


def test_extract_non_square(extractor):
    feats = extractor.extract(make_image(50, 70)[None])
    assert feats.shape == (1, 32, 8, 11)


def test_extract_deterministic_and_batch_independent(extractor):
    a, b = make_image(64, 64, 2), make_image(64, 64, 3)
    both = extractor.extract(np.stack([a, b]))
    alone = extractor.extract(b[None])
    assert torch.allclose(both[1], alone[0], atol=1e-5)
    assert torch.equal(extractor.extract(b[None]), alone)
    assert not torch.allclose(both[0], both[1])
