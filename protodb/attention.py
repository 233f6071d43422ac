"""Cross-attention attribution (DAAM-style), captured while Stable Diffusion samples.

:func:`capture_cross_attention` installs a recording processor on every cross-attention layer
(``attn2``) of a diffusers UNet for the duration of a ``with`` block and restores the original
processors on exit. Only the columns of the class's own prompt tokens are kept, from the
conditional half of the classifier-free-guidance batch, and they are folded into a running sum
at once, so memory stays flat however many steps and layers run (REFERENCE 1.2):

    per layer and step: probs[cond, head, query, class tokens] -> each head's map bicubic-
    upsampled to the latent grid, clamped at 0, summed over heads; counter += heads.
    final map = sum / counter, then the mean over the class's tokens.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from protodb.errors import ProtodbError


def class_token_positions(tokenizer, template: str, class_name: str) -> list[int]:
    """Positions of the class's tokens in the tokenized prompt ``template.format(class_name)``.

    Found by position after the template prefix, never by searching for the first token (that
    search breaks for classes that start with a template word such as "a" or "picture").
    Position 0 is the start-of-text token. Raises ProtodbError if the class does not fit in the
    tokenizer's context.
    """
    if template.count("{}") != 1:
        raise ProtodbError(f"prompt template {template!r} must contain exactly one '{{}}'")
    prefix = template.split("{}")[0]

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False).input_ids if text.strip() else []

    n_prefix = len(ids(prefix))
    n_class = len(ids(class_name))
    full = ids(template.format(class_name))
    start = 1 + n_prefix
    stop = start + n_class
    limit = tokenizer.model_max_length - 1  # the last position holds end-of-text
    if n_class == 0 or stop > limit:
        raise ProtodbError(
            f"class {class_name!r} gives {n_class} tokens after the template prefix; it must give "
            f"1 to {limit - start} tokens: use a shorter name"
        )
    if full[n_prefix : stop - 1] != ids(class_name):
        raise ProtodbError(
            f"template {template!r} merges with class {class_name!r} across the '{{}}' boundary; "
            "put a space before and after '{}' in the template"
        )
    return list(range(start, stop))


@dataclass
class AttributionStore:
    """Running sums of the class-token attention over layers, heads and steps.

    ``total``: float32 [B, T, H, W] sums (B images, T class tokens, latent grid H x W);
    ``count``: number of head maps added per image.
    """

    token_positions: list[int]
    latent_hw: tuple[int, int]
    total: torch.Tensor | None = None
    count: int = 0
    calls: int = field(default=0)

    def add(self, probs: torch.Tensor, heads: int) -> None:
        """Fold in one layer's probabilities: ``probs`` [B*heads, N, K] of the full CFG batch."""
        bh, n, _ = probs.shape
        b_all = bh // heads
        lh, lw = self.latent_hw
        scale = math.sqrt(lh * lw / n)
        h, w = round(lh / scale), round(lw / scale)
        probs = probs.view(b_all, heads, n, -1)
        cond = probs[b_all // 2 :, :, :, self.token_positions]  # conditional half only
        b, t = cond.shape[0], cond.shape[-1]
        maps = cond.permute(0, 3, 1, 2).reshape(b * t * heads, 1, h, w).float()
        if (h, w) != (lh, lw):
            maps = F.interpolate(maps, size=(lh, lw), mode="bicubic", align_corners=False)
        maps = maps.clamp_min(0).view(b, t, heads, lh, lw).sum(dim=2)
        self.total = maps if self.total is None else self.total + maps
        self.count += heads
        self.calls += 1

    def maps(self) -> torch.Tensor:
        """The attribution maps, float32 [B, H, W] (unnormalised, >= 0)."""
        if self.total is None:
            raise RuntimeError("no cross-attention was captured; did the UNet run?")
        return (self.total / self.count).mean(dim=1)


class CaptureCrossAttnProcessor:
    """An attention processor that computes attention explicitly and records class columns.

    Numerically the same computation as diffusers' ``AttnProcessor`` (softmax(QK^T * scale) V);
    it only materialises the (small) cross-attention probabilities it must record.
    """

    def __init__(self, store: AttributionStore) -> None:
        self.store = store

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        batch, seq, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        attention_mask = attn.prepare_attention_mask(attention_mask, seq, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        query = attn.head_to_batch_dim(query)
        key = attn.head_to_batch_dim(key)
        value = attn.head_to_batch_dim(value)
        probs = attn.get_attention_scores(query, key, attention_mask)
        with torch.no_grad():
            self.store.add(probs.detach(), attn.heads)
        hidden_states = torch.bmm(probs, value)
        hidden_states = attn.batch_to_head_dim(hidden_states)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


@contextlib.contextmanager
def capture_cross_attention(
    unet, token_positions: Sequence[int], latent_hw: tuple[int, int]
) -> Iterator[AttributionStore]:
    """Record class-token cross-attention of every ``attn2`` layer while the block runs.

    Usage::

        with capture_cross_attention(pipe.unet, positions, (64, 64)) as store:
            pipe(prompt, ...)
        maps = store.maps()  # [B, 64, 64]

    The UNet's original processors are restored on exit, also after an exception.
    """
    store = AttributionStore(list(token_positions), tuple(latent_hw))
    original = dict(unet.attn_processors)
    patched = {
        name: CaptureCrossAttnProcessor(store) if name.endswith("attn2.processor") else proc
        for name, proc in original.items()
    }
    # set_attn_processor consumes (pops from) the dict it is given: hand it copies.
    unet.set_attn_processor(dict(patched))
    try:
        yield store
    finally:
        unet.set_attn_processor(dict(original))
