"""Helpers shared by the ViT extractors (dino, mae, clip): attention keys of a block, read
through a forward hook on the block's own modules (nothing forked), laid out on the patch grid.
"""

from __future__ import annotations


def key_hook(module, store: list):
    """Forward hook that keeps the module's output (the key projection) for one call."""

    def hook(_m, _inp, out):
        store.append(out)

    return module.register_forward_hook(hook)


def block_index(layer: str, blocks: int) -> int:
    """``"keys:<i>"`` -> block index i (negative counts from the end), checked against depth."""
    from protodb.errors import ProtodbError

    try:
        kind, idx = layer.split(":")
        i = int(idx)
    except ValueError:
        kind, i = "", 0
    if kind != "keys" or not -blocks <= i < blocks:
        raise ProtodbError(
            f"layer {layer!r} is not 'keys:<block>' with block in {-blocks}..{blocks - 1}"
        )
    return i % blocks


def tokens_to_grid(tokens, hh: int, ww: int, patch: int):
    """[B, h*w, D] patch tokens (row-major) -> [B, D, h, w]."""
    b = tokens.shape[0]
    return tokens.reshape(b, hh // patch, ww // patch, -1).permute(0, 3, 1, 2)


def key_proj(block):
    """The key projection of a transformers ViT block (names differ across versions)."""
    att = block.attention
    return att.k_proj if hasattr(att, "k_proj") else att.attention.key
