"""Dense feature extractors, by name.

An extractor maps RGB images to a dense feature grid: ``extract(images)`` takes uint8
[B, H, W, 3] and returns float32 [B, D, h, w] (unnormalised; features are L2-normalised only at
matching time). Its :class:`ExtractorConfig` names everything that changes a feature; the
extractor id is a hash of it and keys the prototype sets made with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from protodb.errors import ProtodbError
from protodb.models import (
    CLIP_DEFAULT,
    DINO_DEFAULT,
    DINOV2_DEFAULT,
    MAE_DEFAULT,
    SD_DEFAULT,
    TINY,
    TINY_VERSION,
)
from protodb.registry import PluginConfig, Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ExtractorConfig(PluginConfig):
    """name: registry name; model: hub id, local path or "tiny"; layer: which output;
    input_size: short side in pixels (rounded to the patch grid); store_dtype: how prototype
    vectors are stored ("float16" or "float32")."""

    name: str = "dinov2"
    model: str = DINOV2_DEFAULT
    revision: str | None = None
    layer: str = "last_hidden_state"
    input_size: int = 448
    store_dtype: str = "float16"
    weights: str | None = None


class Extractor:
    """Base class. Subclasses set ``patch`` and ``dim`` and implement ``_forward``; ``mean`` and
    ``std`` are the per-channel input normalisation (pixels in [0, 1])."""

    patch: int
    dim: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __init__(self, config: ExtractorConfig, device: str = "cpu") -> None:
        self.config = config
        self.device = device

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Input size (H', W') for an image: short side = input_size, both multiples of patch."""
        scale = self.config.input_size / min(height, width)
        p = self.patch
        return (max(p, round(height * scale / p) * p), max(p, round(width * scale / p) * p))

    def preprocess(self, images: np.ndarray):
        """uint8 [B, H, W, 3] -> float32 tensor [B, 3, H', W'] resized and normalised."""
        import torch
        import torch.nn.functional as F

        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 [B, H, W, 3], got {images.dtype} {images.shape}")
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        size = self.grid_size(images.shape[1], images.shape[2])
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device)

    def extract(self, images: np.ndarray):
        """uint8 [B, H, W, 3] -> float32 tensor [B, D, h, w] on the CPU."""
        import torch

        with torch.inference_mode():
            return self._forward(self.preprocess(images)).float().cpu()

    def _forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError


EXTRACTORS: Registry[type[Extractor]] = Registry("extractor")
EXTRACTORS.register_lazy("world", "protodb.world")
# A profile whose only extractor is its own, by the profile's name (the test world's "world"):
# its config factory, called with the caller's overrides.
PROFILE_EXTRACTORS: Registry[Callable[..., ExtractorConfig]] = Registry("extractor profile")
PROFILE_EXTRACTORS.register_lazy("world", "protodb.world")


@EXTRACTORS.register("dinov2")
class Dinov2Extractor(Extractor):
    """DINOv2 (transformers Dinov2Model): last-layer patch tokens, CLS and registers dropped.

    ViT-B/14 by default: 768 dims, stride 14. The tiny twin: 32 dims, stride 8.
    """

    def __init__(self, config: ExtractorConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        from protodb.models import load_dinov2

        self.net = load_dinov2(config.model, config.revision, device)
        self.patch = int(self.net.config.patch_size)
        self.dim = int(self.net.config.hidden_size)
        self.skip = 1 + int(getattr(self.net.config, "num_register_tokens", 0) or 0)

    def _forward(self, x):
        out = self.net(pixel_values=x)
        tokens = out.last_hidden_state[:, self.skip :]
        b, _, hh, ww = x.shape
        h, w = hh // self.patch, ww // self.patch
        return tokens.reshape(b, h, w, -1).permute(0, 3, 1, 2)


# --------------------------------------------------------------------------- ViT keys


def _key_hook(module, store: list):
    """Forward hook that keeps the module's output (the key projection) for one call."""

    def hook(_m, _inp, out):
        store.append(out)

    return module.register_forward_hook(hook)


def _block_index(layer: str, blocks: int) -> int:
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


def _tokens_to_grid(tokens, hh: int, ww: int, patch: int):
    """[B, h*w, D] patch tokens (row-major) -> [B, D, h, w]."""
    b = tokens.shape[0]
    return tokens.reshape(b, hh // patch, ww // patch, -1).permute(0, 3, 1, 2)


@EXTRACTORS.register("dino")
class DinoExtractor(Extractor):
    """DINO ViT-B/8 (transformers ViTModel): keys of a block (default the last), CLS dropped.

    768 dims, stride 8; position embeddings interpolated for the input size. Tiny: 32 dims.
    """

    def __init__(self, config: ExtractorConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        from protodb.models import load_dino

        self.net = load_dino(config.model, config.revision, device)
        self.patch = int(self.net.config.patch_size)
        self.dim = int(self.net.config.hidden_size)
        layers = self.net.encoder.layer if hasattr(self.net, "encoder") else self.net.layers
        self.block = layers[_block_index(config.layer, len(layers))]

    def _forward(self, x):
        keys: list = []
        handle = _key_hook(_key_proj(self.block), keys)
        try:
            self.net(pixel_values=x, interpolate_pos_encoding=True)
        finally:
            handle.remove()
        return _tokens_to_grid(keys[0][:, 1:], x.shape[2], x.shape[3], self.patch)


def _key_proj(block):
    """The key projection of a transformers ViT block (names differ across versions)."""
    att = block.attention
    return att.k_proj if hasattr(att, "k_proj") else att.attention.key


@EXTRACTORS.register("mae")
class MaeExtractor(Extractor):
    """MAE ViT-B/16 (transformers ViTMAEModel, mask ratio 0, patches in order): keys of the last
    block, CLS dropped. 768 dims, stride 16. Tiny: 32 dims, stride 8."""

    def __init__(self, config: ExtractorConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        from protodb.models import load_mae

        self.net = load_mae(config.model, config.revision, device)
        self.patch = int(self.net.config.patch_size)
        self.dim = int(self.net.config.hidden_size)
        layers = self.net.encoder.layer if hasattr(self.net, "encoder") else self.net.layers
        self.block = layers[_block_index(config.layer, len(layers))]

    def _forward(self, x):
        import torch

        b, _, hh, ww = x.shape
        n = (hh // self.patch) * (ww // self.patch)
        # ascending noise: the "shuffle" is the identity, so tokens stay in raster order
        noise = torch.arange(n, dtype=torch.float32, device=x.device).expand(b, n)
        keys: list = []
        handle = _key_hook(_key_proj(self.block), keys)
        try:
            self.net(pixel_values=x, noise=noise, interpolate_pos_encoding=True)
        finally:
            handle.remove()
        return _tokens_to_grid(keys[0][:, 1:], hh, ww, self.patch)


@EXTRACTORS.register("clip")
class ClipExtractor(Extractor):
    """CLIP ViT-B/16, OpenAI weights (open_clip): keys of block 10 (the second-to-last), taken
    from the attention input after ln_1, CLS dropped; the positional embedding is bicubically
    interpolated to the input's patch grid. 768 dims, stride 16. Tiny: 32 dims, stride 8.

    ``model`` is "ARCH/PRETRAINED" (e.g. "ViT-B-16/openai"; PRETRAINED may be a local file).
    """

    mean = OPENAI_CLIP_MEAN
    std = OPENAI_CLIP_STD

    def __init__(self, config: ExtractorConfig, device: str = "cpu") -> None:
        super().__init__(config, device)
        from protodb.models import load_clip

        arch, _, pretrained = config.model.partition("/")
        net = load_clip(arch, pretrained or None, device)
        self.visual = net.visual
        self.patch = int(self.visual.conv1.kernel_size[0])
        self.dim = int(self.visual.conv1.out_channels)
        blocks = self.visual.transformer.resblocks
        self.index = _block_index(config.layer, len(blocks))

    def _positional(self, gh: int, gw: int):
        import torch
        import torch.nn.functional as F

        pos = self.visual.positional_embedding  # [1 + g*g, D]
        cls, grid = pos[:1], pos[1:]
        g = int(round(grid.shape[0] ** 0.5))
        if (gh, gw) == (g, g):
            return pos
        grid = grid.reshape(1, g, g, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(gh * gw, -1)])

    def _forward(self, x):
        import torch

        v = self.visual
        t = v.conv1(x)  # [B, D, gh, gw]
        b, d, gh, gw = t.shape
        t = t.reshape(b, d, gh * gw).permute(0, 2, 1)
        cls = v.class_embedding.to(t.dtype).expand(b, 1, d)
        t = torch.cat([cls, t], dim=1) + self._positional(gh, gw).to(t.dtype)
        t = v.ln_pre(v.patch_dropout(t))
        batch_first = getattr(v.transformer, "batch_first", True)
        if not batch_first:
            t = t.transpose(0, 1)
        for block in v.transformer.resblocks[: self.index]:
            t = block(t)
        if not batch_first:
            t = t.transpose(0, 1)
        block = v.transformer.resblocks[self.index]
        attn = block.attn
        w = attn.in_proj_weight[d : 2 * d]
        bias = attn.in_proj_bias[d : 2 * d] if attn.in_proj_bias is not None else None
        keys = torch.nn.functional.linear(block.ln_1(t), w, bias)
        return keys[:, 1:].reshape(b, gh, gw, d).permute(0, 3, 1, 2)


# --------------------------------------------------------------------------- Stable Diffusion

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


def sd_query_layers(unet) -> list[tuple[str, int]]:
    """(module name, output dims) of the ``to_q`` projections the SD extractor concatenates.

    SD 1.x's UNet (4 up blocks) gives the nine layers of REFERENCE 1.4: 320 + 1280 + 3 x 1280 +
    3 x 640 + 320 = 7680 dims. The tiny twin (2 up blocks) gives its analogue.
    """
    blocks = SD_QUERY_BLOCKS if len(unet.up_blocks) == 4 else TINY_SD_QUERY_BLOCKS
    modules = dict(unet.named_modules())
    out = []
    for blk in blocks:
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
        from protodb.models import load_sd
        from protodb.synthesis.generate import sd_dtype

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


# Per extractor: (default model, layer, input size); the tiny twin's layer where it differs.
# Support images are encoded at 512 (REFERENCE 1.4); dinov2 keeps its 448.
DEFAULTS: dict[str, tuple[str, str, int]] = {
    "dinov2": (DINOV2_DEFAULT, "last_hidden_state", 448),
    "sd": (SD_DEFAULT, SD_LAYER, 512),
    "dino": (DINO_DEFAULT, "keys:-1", 512),
    "clip": (f"{CLIP_DEFAULT}/openai", "keys:10", 512),
    "mae": (MAE_DEFAULT, "keys:-1", 512),
}
TINY_LAYERS = {"clip": "keys:0"}  # the second-to-last block of the 2-block twin

# The paper's best ensemble (Table 2), the default set of ``add`` on the real profile.
PAPER_ENSEMBLE = ("sd", "dino", "clip")


def default_extractor_config(profile: str, name: str = "dinov2", **overrides) -> ExtractorConfig:
    """The config of extractor ``name`` for a profile (tiny: 64 px input, tiny weights)."""
    EXTRACTORS.get(name)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if profile in PROFILE_EXTRACTORS or name in PROFILE_EXTRACTORS:  # e.g. the test world
        if profile != name:
            raise ProtodbError(
                f"extractor {name!r} with profile {profile!r}: the test world's extractor "
                "'world' and profile 'world' go together; use --profile world (no --extractor)"
            )
        return PROFILE_EXTRACTORS.get(profile)(**overrides)
    model, layer, size = DEFAULTS.get(name, (DINOV2_DEFAULT, "last_hidden_state", 448))
    if profile == "tiny":
        layer = TINY_LAYERS.get(name, layer)
        base = ExtractorConfig(
            name=name, model=TINY, weights=TINY_VERSION, input_size=64, layer=layer
        )
    else:
        base = ExtractorConfig(name=name, model=model, layer=layer, input_size=size)
    return replace(base, **overrides)


def default_extractor_names(profile: str) -> list[str]:
    """The extractors ``add`` uses when none is named: the paper's best ensemble (sd, dino,
    clip; REFERENCE 1.4) on the real profile; dinov2 alone on the tiny profile, which keeps
    offline runs fast; the test world's own extractor on the world profile."""
    if profile == "world":
        return ["world"]
    return ["dinov2"] if profile == "tiny" else list(PAPER_ENSEMBLE)


_CACHE: dict[tuple[str, str], Extractor] = {}


def get_extractor(config: ExtractorConfig, device: str = "cpu") -> Extractor:
    """Build (or reuse, per process) the extractor for ``config`` on ``device``."""
    key = (config.id, device)
    if key not in _CACHE:
        cls = EXTRACTORS.get(config.name)
        _CACHE[key] = cls(config, device)
    return _CACHE[key]
