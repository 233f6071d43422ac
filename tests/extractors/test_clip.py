"""The clip extractor's keys (protodb.extractors.clip)."""

import torch
from conftest import make_image

from protodb.extractors.factory import default_extractor_config, get_extractor


def test_clip_keys_are_block_key_projection():
    """clip: keys = ln_1(x) @ W_k^T + b_k of the chosen block, CLS dropped, raster order."""
    ext = get_extractor(default_extractor_config("tiny", "clip"), "cpu")
    img = make_image(64, 64, 4)[None]
    x = ext.preprocess(img)
    v = ext.visual
    with torch.no_grad():  # at the native 64 px no interpolation: open_clip's own embedding
        t = v._embeds(x)  # conv1, CLS, positional embedding, ln_pre
        block = v.transformer.resblocks[0]
        d = ext.dim
        w, b = block.attn.in_proj_weight[d : 2 * d], block.attn.in_proj_bias[d : 2 * d]
        k = torch.nn.functional.linear(block.ln_1(t), w, b)
    feats = ext.extract(img)
    assert torch.allclose(feats[0, :, 0, 1], k[0, 2], atol=1e-5)
    assert torch.allclose(feats[0, :, 7, 7], k[0, 64], atol=1e-5)


def test_clip_defaults_to_quickgelu_and_flags_gelu_sets():
    from protodb.extractors.base import ExtractorConfig, known_issue
    from protodb.extractors.factory import default_extractor_config
    from protodb.models.defaults import CLIP_DEFAULT

    assert CLIP_DEFAULT == "ViT-B-16-quickgelu"
    new = default_extractor_config("default", "clip")
    old = ExtractorConfig(name="clip", model="ViT-B-16/openai", layer="keys:10", input_size=512)
    assert new.model == "ViT-B-16-quickgelu/openai" and new.id != old.id
    assert known_issue(new) is None
    assert "QuickGELU" in known_issue(old)
    assert known_issue(ExtractorConfig(name="clip", model="ViT-B-16/laion2b_s34b_b88k")) is None
    assert known_issue(default_extractor_config("tiny", "clip")) is None
    assert known_issue(ExtractorConfig(name="no-such-extractor")) is None
