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
