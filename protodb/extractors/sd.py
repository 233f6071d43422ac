"""Extractor ``sd``: Stable Diffusion's own features (REFERENCE 1.4).

The ``to_q`` outputs of the nine ``attn2`` layers, read by hooks, for the image VAE-encoded,
noised to t=200 with noise fixed per image, and denoised once with the empty prompt; each
resized to the latent grid and concatenated (7680 dims on SD 1.x).
"""

from __future__ import annotations

import numpy as np

from protodb.extractors.base import EXTRACTORS, Extractor, ExtractorConfig

SD_LAYER = "attn2.to_q@t200"
SD_TIMESTEP = 200
# REFERENCE 1.4: the nine attn2 query projections of SD 1.x (4 up blocks), 7680 dims at 64x64.
SD_QUERY_BLOCKS = (
    "down_blocks.0.attentions.0",
    "mid_block.attentions.0",
    "up_blocks.1.attentions.0",
    "up_blocks.1.attentions.1",
    "up_blocks.1.attentions.2",
    "up_blocks.2.attentions.0",
    "up_blocks.2.attentions.1",
    "up_blocks.2.attentions.2",
    "up_blocks.3.attentions.2",
)
# The tiny twin (2 up blocks of 2 attentions): the same pattern, one resolution fewer.
TINY_SD_QUERY_BLOCKS = (
    "down_blocks.0.attentions.0",
    "mid_block.attentions.0",
    "up_blocks.0.attentions.0",
    "up_blocks.0.attentions.1",
    "up_blocks.1.attentions.1",
)


def sd_query_blocks(unet) -> tuple[str, ...]:
    """The attention blocks whose ``attn2.to_q`` the SD extractor reads, derived from the UNet
    it is given, so any SD-family UNet (SD 1.x, the tiny twin, the learned world's) gets the
    analogue of REFERENCE 1.4: the first attention of the first down block, the mid block's,
    every attention of every up block but the last that has attentions, and the last attention
    of that last one. On SD 1.x this is exactly SD_QUERY_BLOCKS; on the tiny twin,
    TINY_SD_QUERY_BLOCKS."""
    names = {n for n, _ in unet.named_modules()}
    up = [
        i
        for i, blk in enumerate(unet.up_blocks)
        if getattr(blk, "attentions", None) is not None and len(blk.attentions)
    ]
    out = []
    if "down_blocks.0.attentions.0" in names:
        out.append("down_blocks.0.attentions.0")
    if "mid_block.attentions.0" in names:
        out.append("mid_block.attentions.0")
    for i in up[:-1]:
        out += [f"up_blocks.{i}.attentions.{j}" for j in range(len(unet.up_blocks[i].attentions))]
    if up:
        last = up[-1]
        out.append(f"up_blocks.{last}.attentions.{len(unet.up_blocks[last].attentions) - 1}")
    return tuple(out)


def sd_query_layers(unet) -> list[tuple[str, int]]:
    """(module name, output dims) of the ``to_q`` projections the SD extractor concatenates
    (see :func:`sd_query_blocks`).

    SD 1.x's UNet (4 up blocks) gives the nine layers of REFERENCE 1.4: 320 + 1280 + 3 x 1280 +
    3 x 640 + 320 = 7680 dims. The tiny twin (2 up blocks) gives its analogue.
    """
    modules = dict(unet.named_modules())
    out = []
    for blk in sd_query_blocks(unet):
        name = f"{blk}.transformer_blocks.0.attn2.to_q"
        out.append((name, int(modules[name].out_features)))
    return out


def ddpm_add_noise_coefficients(t: int = SD_TIMESTEP) -> tuple[float, float]:
    """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) of SD's scaled-linear DDPM schedule.

    At t = 200: (0.868154, 0.496295), so x_t = 0.868154 x0 + 0.496295 eps.
    """
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
    )
    ab = float(sched.alphas_cumprod[t])
    return ab**0.5, (1.0 - ab) ** 0.5


def image_noise_seed(image: np.ndarray) -> int:
    """The seed of an image's VAE-sample and DDPM noise: a 63-bit hash of its pixels and shape."""
    import hashlib

    h = hashlib.sha256(repr(image.shape).encode() + np.ascontiguousarray(image).tobytes())
    return int.from_bytes(h.digest()[:8], "little") & ((1 << 63) - 1)


@EXTRACTORS.register("sd")
class SdExtractor(Extractor):
    """Stable Diffusion 1.x: the query projections of the attn2 layers of REFERENCE 1.4.

    image in [-1, 1] -> VAE latent sample x 0.18215 -> DDPM noise at t = 200 (x_t = 0.868154 x0
    + 0.496295 eps) -> UNet with the empty-prompt embedding, no guidance; each layer's ``to_q``
    output is bilinearly resized to the latent grid (64 x 64 at 512 px) and concatenated:
    float32 [B, 7680, H/8, W/8]. The noise is fixed per image (seeded by a hash of its pixels),
    so features are a pure function of the image. Tiny: 5 layers, 256 dims.
    """

    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def __init__(self, config: ExtractorConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        from protodb.errors import ProtodbError
        from protodb.models.diffusion import load_sd, sd_dtype

        if config.layer != SD_LAYER:
            raise ProtodbError(f"sd extractor layer {config.layer!r} unknown; use {SD_LAYER!r}")
        self.pipe = load_sd(config.model, config.revision, device, sd_dtype(device), "sigma_min")
        unet = self.pipe.unet
        self.layers = sd_query_layers(unet)
        self.dim = sum(d for _, d in self.layers)
        self.factor = self.pipe.vae_scale_factor
        # the latent must survive the UNet's downsamplings
        self.patch = self.factor * 2 ** (len(unet.config.block_out_channels) - 1)
        self.coefficients = ddpm_add_noise_coefficients(SD_TIMESTEP)
        self._empty = None
        self._images: np.ndarray | None = None

    def extract(self, images: np.ndarray):
        self._images = images  # the per-image noise seeds come from the original pixels
        try:
            return super().extract(images)
        finally:
            self._images = None

    def _empty_prompt(self):
        if self._empty is None:
            cond, _ = self.pipe.encode_prompt("", self.device, 1, False)
            self._empty = cond
        return self._empty

    def _forward(self, x):
        import torch
        import torch.nn.functional as F

        pipe, unet = self.pipe, self.pipe.unet
        dtype = unet.dtype
        b = x.shape[0]
        lh, lw = x.shape[2] // self.factor, x.shape[3] // self.factor
        seeds = [image_noise_seed(im) for im in self._images]
        dist = pipe.vae.encode(x.to(dtype)).latent_dist
        ch = dist.mean.shape[1]
        sample_eps, noise_eps = [], []
        for s in seeds:
            g = torch.Generator("cpu").manual_seed(s)
            sample_eps.append(torch.randn((ch, lh, lw), generator=g))
            noise_eps.append(torch.randn((ch, lh, lw), generator=g))
        e1 = torch.stack(sample_eps).to(x.device, dist.mean.dtype)
        e2 = torch.stack(noise_eps).to(x.device, dist.mean.dtype)
        x0 = (dist.mean + dist.std * e1) * pipe.vae.config.scaling_factor
        a, s = self.coefficients
        xt = a * x0 + s * e2
        captured: dict[str, torch.Tensor] = {}
        modules = dict(unet.named_modules())
        handles = []
        for name, _ in self.layers:

            def hook(_m, _i, out, name=name):
                captured[name] = out

            handles.append(modules[name].register_forward_hook(hook))
        try:
            unet(
                xt.to(dtype),
                torch.tensor(SD_TIMESTEP, device=x.device),
                encoder_hidden_states=self._empty_prompt().expand(b, -1, -1).to(dtype),
            )
        finally:
            for h in handles:
                h.remove()
        maps = []
        for name, d in self.layers:
            q = captured[name].float()  # [B, h*w, d]
            n = q.shape[1]
            scale = (lh * lw / n) ** 0.5
            h, w = round(lh / scale), round(lw / scale)
            q = q.transpose(1, 2).reshape(b, d, h, w)
            if (h, w) != (lh, lw):
                q = F.interpolate(q, size=(lh, lw), mode="bilinear", align_corners=False)
            maps.append(q)
        return torch.cat(maps, dim=1)
