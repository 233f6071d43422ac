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
from collections.abc import Collection, Iterator, Sequence
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
    ``count``: number of head maps added per image. ``images``: B, the images of the UNet's
    batch: its conditional rows are its last B (2B rows with classifier-free guidance,
    unconditional first; B without it, at guidance 1, where diffusers runs the conditional rows
    alone); None: the second half of the batch (guidance on).
    """

    token_positions: list[int]
    latent_hw: tuple[int, int]
    images: int | None = None
    total: torch.Tensor | None = None
    count: int = 0
    calls: int = field(default=0)

    def add(self, probs: torch.Tensor, heads: int) -> None:
        """Fold in one layer's probabilities: ``probs`` [B*heads, N, K] of the full CFG batch
        (unconditional half first); only the conditional half is used."""
        self.add_cond(probs[self.cond_start(probs.shape[0] // heads) * heads :], heads)

    def cond_start(self, rows: int) -> int:
        """The first conditional row of a UNet batch of ``rows`` rows (see ``images``)."""
        if self.images is None:
            return rows // 2
        if rows not in (self.images, 2 * self.images):
            raise RuntimeError(f"a UNet batch of {rows} rows for {self.images} images")
        return rows - self.images

    def columns(self, t: torch.Tensor) -> torch.Tensor:
        """The class's token columns of ``t`` [..., K] -> [..., T], in order. Consecutive
        positions (what :func:`class_token_positions` gives) are a slice, a view: no index
        tensor is copied to the device, which on CUDA would synchronise it at every layer."""
        p = self.token_positions
        if p and p == list(range(p[0], p[0] + len(p))):
            return t[..., p[0] : p[0] + len(p)]
        return t[..., p]

    def add_cond(self, probs: torch.Tensor, heads: int) -> None:
        """Fold in one layer's conditional-half probabilities: [B*heads, N, K], softmaxed over
        all K keys; only the class's token columns are read."""
        self.add_columns(self.columns(probs), heads)

    def add_columns(self, cols: torch.Tensor, heads: int) -> None:
        """Fold in the class columns of one layer: [B*heads, N, T] (T = class tokens, in order)."""
        bh, n, t = cols.shape
        b = bh // heads
        lh, lw = self.latent_hw
        scale = math.sqrt(lh * lw / n)
        h, w = round(lh / scale), round(lw / scale)
        maps = cols.view(b, heads, n, t).permute(0, 3, 1, 2).reshape(b * t * heads, 1, h, w)
        maps = maps.float()
        if (h, w) != (lh, lw):
            maps = F.interpolate(maps, size=(lh, lw), mode="bicubic", align_corners=False)
        maps = maps.clamp_min(0).view(b, t, heads, lh, lw).sum(dim=2)
        self.total = maps if self.total is None else self.total + maps
        self.count += heads
        self.calls += 1

    def nbytes(self) -> int:
        """Bytes of tensor data the store holds (constant once the first layer was added)."""
        return 0 if self.total is None else self.total.numel() * self.total.element_size()

    def maps(self) -> torch.Tensor:
        """The attribution maps, float32 [B, H, W] (unnormalised, >= 0)."""
        if self.total is None:
            raise RuntimeError("no cross-attention was captured; did the UNet run?")
        return (self.total / self.count).mean(dim=1)


class CaptureCrossAttnProcessor:
    """Wraps a layer's own attention processor and records the class's attention columns.

    The layer's output comes from the wrapped processor unchanged (so images are the same with
    and without capture, down to the bit). On the side, for the conditional half of the CFG
    batch only, it computes softmax(QK^T * scale) over all prompt tokens, hands the store the
    result, and lets it go: only the store's running sums outlive the call.
    """

    def __init__(self, store: AttributionStore, inner) -> None:
        self.store = store
        self.inner = inner

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
        if encoder_hidden_states is not None:
            with torch.no_grad():
                self._record(attn, hidden_states, encoder_hidden_states, temb)
        return self.inner(
            attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs
        )

    def _record(self, attn, hidden_states, encoder_hidden_states, temb) -> None:
        start = self.store.cond_start(hidden_states.shape[0])
        x = hidden_states[start:]
        ctx = encoder_hidden_states[start:]
        if attn.spatial_norm is not None:
            x = attn.spatial_norm(x, temb)
        if x.ndim == 4:
            b, c, h, w = x.shape
            x = x.view(b, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            x = attn.group_norm(x.transpose(1, 2)).transpose(1, 2)
        if attn.norm_cross:
            ctx = attn.norm_encoder_hidden_states(ctx)
        query = attn.head_to_batch_dim(attn.to_q(x))
        key = attn.head_to_batch_dim(attn.to_k(ctx))
        # softmax over all prompt tokens, written only for the class's columns:
        # p[:, :, j] = exp(s_j - logsumexp_k s_k), the same numbers softmax gives
        scores = torch.bmm(query, key.transpose(-1, -2)).float() * attn.scale
        lse = scores.logsumexp(dim=-1, keepdim=True)
        cols = (self.store.columns(scores) - lse).exp()
        self.store.add_columns(cols, attn.heads)


@contextlib.contextmanager
def capture_cross_attention(
    unet,
    token_positions: Sequence[int],
    latent_hw: tuple[int, int],
    layers: Collection[str] | None = None,
    images: int | None = None,
) -> Iterator[AttributionStore]:
    """Record class-token cross-attention of every ``attn2`` layer while the block runs.

    ``layers``: processor names (``unet.attn_processors`` keys) to capture instead of every
    ``attn2`` layer (referring segmentation captures the coarse layers only, REFERENCE 2).
    ``images``: the images the pipeline makes per UNet call; given, the capture takes the last
    that many rows of each batch as the conditional ones, with or without classifier-free
    guidance (``guidance_scale`` 1 runs the conditional rows alone); None: the second half.

    Usage::

        with capture_cross_attention(pipe.unet, positions, (64, 64)) as store:
            pipe(prompt, ...)
        maps = store.maps()  # [B, 64, 64]

    The UNet's original processors are restored on exit, also after an exception.
    """
    store = AttributionStore(list(token_positions), tuple(latent_hw), images)
    original = dict(unet.attn_processors)
    if layers is not None:
        unknown = sorted(set(layers) - set(original))
        if unknown:
            raise ProtodbError(f"no attention layer {unknown[0]!r} in this UNet")

    def wanted(name: str) -> bool:
        if layers is not None:
            return name in layers
        return name.endswith("attn2.processor")

    patched = {
        name: CaptureCrossAttnProcessor(store, proc) if wanted(name) else proc
        for name, proc in original.items()
    }
    # set_attn_processor consumes (pops from) the dict it is given: hand it copies.
    unet.set_attn_processor(dict(patched))
    try:
        yield store
    finally:
        unet.set_attn_processor(dict(original))
