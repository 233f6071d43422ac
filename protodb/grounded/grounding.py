"""The grounding head (REFERENCE 3): a small trainable module over the frozen UNet's multi-scale
features and an entity's text-token embedding that predicts the entity's mask.

Features (:func:`unet_features`): the image VAE-encoded (latent mean), noised to a late
timestep (t = 100 of 1000 by default: little noise, as the paper found best, t = 5 of 50) with
noise seeded by the image's pixels, and denoised once with the image's prompt; the output of
every UNet up block is kept (float32 [C_i, h_i, w_i], coarse to fine), and the text encoder's
last hidden states of the prompt (float32 [77, D]). The entity's embedding is the mean of those
states over its token positions (protodb.grounded.tokens).

Head (:class:`GroundingHead`): each scale projected to ``dim`` channels (1x1 conv), upsampled
bilinearly to the finest scale and summed, refined by a 3x3 conv + GELU -> F [dim, h, w]; the
entity embedding projected to ``dim`` (linear) -> e; mask logits = 1x1 conv(GELU(3x3 conv(F * e)))
[h, w], upsampled bilinearly to the image. The class enters only through e, so the head can
segment classes it was never trained on (the paper's seen / unseen protocol).

Training (:func:`train_head`): on synthetic images of the seen classes whose masks come from a
training-free source of protodb.grounded.entity_masks (the paper used masks of a detector
trained on human labels, Mask R-CNN); binary cross-entropy + soft Dice per entity, Adam. Saved as
``model.safetensors`` + ``config.json`` (the head's arguments, the generator config, the
classes seen, the training settings).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from protodb.errors import NotFoundError, ProtodbError
from protodb.grounded.entity_masks import EntityMasks, resolve_overlaps

FEATURE_T = 100
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


@dataclass
class Features:
    """scales: float32 [C_i, h_i, w_i] per UNet up block (coarse to fine); text: float32
    [77, D], the prompt's last hidden states."""

    scales: list[torch.Tensor]
    text: torch.Tensor


def _seed(image: np.ndarray, prompt: str) -> int:
    h = hashlib.sha256(repr(image.shape).encode() + np.ascontiguousarray(image).tobytes())
    h.update(prompt.encode())
    return int.from_bytes(h.digest()[:8], "little") & ((1 << 63) - 1)


@torch.no_grad()
def unet_features(pipe, image: np.ndarray, prompt: str, *, timestep: int = FEATURE_T) -> Features:
    """The frozen UNet's features of ``image`` (uint8 [S, S, 3]) under ``prompt`` (see the
    module docstring); a pure function of (image, prompt, timestep)."""
    from protodb.extractors.sd import ddpm_add_noise_coefficients

    unet, vae = pipe.unet, pipe.vae
    device, dtype = unet.device, unet.dtype
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    x = (x / 127.5 - 1.0).to(device, vae.dtype)
    x0 = vae.encode(x).latent_dist.mean.float() * vae.config.scaling_factor
    g = torch.Generator("cpu").manual_seed(_seed(image, prompt))
    eps = torch.randn(x0.shape[1:], generator=g)[None].to(device)
    a, s = ddpm_add_noise_coefficients(timestep)
    xt = a * x0 + s * eps
    cond, _ = pipe.encode_prompt(prompt, device, 1, False)
    captured: list[torch.Tensor] = []
    handles = [
        blk.register_forward_hook(lambda _m, _i, out: captured.append(out.float()[0]))
        for blk in unet.up_blocks
    ]
    try:
        unet(xt.to(dtype), torch.tensor(timestep, device=device), encoder_hidden_states=cond)
    finally:
        for h in handles:
            h.remove()
    return Features([c.cpu() for c in captured], cond.float()[0].cpu())


@dataclass(frozen=True)
class HeadConfig:
    """The head's arguments: channels of each UNet scale, text width, inner width, feature
    timestep."""

    channels: tuple[int, ...]
    text_dim: int
    dim: int = 32
    timestep: int = FEATURE_T


class GroundingHead(nn.Module):
    """See the module docstring. ``forward(scales, entity) -> logits [h, w]`` for one image's
    scales (list of [C_i, h_i, w_i]) and one entity embedding [D]."""

    def __init__(self, config: HeadConfig, info: dict | None = None) -> None:
        super().__init__()
        self.config = config
        self.info = dict(info or {})
        d = config.dim
        self.proj = nn.ModuleList([nn.Conv2d(c, d, 1) for c in config.channels])
        self.fuse = nn.Conv2d(d, d, 3, padding=1)
        self.text = nn.Linear(config.text_dim, d)
        self.mix = nn.Conv2d(d, d, 3, padding=1)
        self.out = nn.Conv2d(d, 1, 1)

    def pixel_features(self, scales: list[torch.Tensor]) -> torch.Tensor:
        size = scales[-1].shape[-2:]
        acc = 0
        for p, s in zip(self.proj, scales, strict=True):
            y = p(s[None])
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            acc = acc + y
        return F.gelu(self.fuse(acc))  # [1, d, h, w]

    def forward(self, scales: list[torch.Tensor], entity: torch.Tensor) -> torch.Tensor:
        f = self.pixel_features(scales)
        e = self.text(entity)[None, :, None, None]
        return self.out(F.gelu(self.mix(f * e)))[0, 0]

    @property
    def id(self) -> str:
        text = json.dumps({"config": asdict(self.config), "info": self.info}, sort_keys=True)
        digest = hashlib.sha256(text.encode())
        for k, v in sorted(self.state_dict().items()):
            digest.update(k.encode() + v.detach().cpu().numpy().tobytes())
        return f"grounding-{digest.hexdigest()[:12]}"

    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(out / WEIGHTS))
        data = {"head": asdict(self.config), "info": self.info}
        (out / CONFIG).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> GroundingHead:
        from safetensors.torch import load_file

        root = Path(path)
        if not (root / CONFIG).is_file() or not (root / WEIGHTS).is_file():
            raise NotFoundError(
                f"--grounding {str(root)!r} holds no grounding head ({CONFIG} and {WEIGHTS}); "
                "train one with `protodb grounding train`"
            )
        data = json.loads((root / CONFIG).read_text("utf-8"))
        h = data["head"]
        head = cls(HeadConfig(**{**h, "channels": tuple(h["channels"])}), data.get("info"))
        head.load_state_dict(load_file(str(root / WEIGHTS)))
        head.eval()
        return head

    @torch.no_grad()
    def predict(self, feats: Features, positions: list[list[int]], size) -> np.ndarray:
        """Probabilities float32 [E, H, W] in [0, 1] of each entity (token ``positions``)."""
        out = []
        for ps in positions:
            logits = self(feats.scales, feats.text[ps].mean(0))
            up = F.interpolate(logits[None, None], size=size, mode="bilinear", align_corners=False)
            out.append(torch.sigmoid(up)[0, 0].numpy())
        return np.stack(out).astype(np.float32)

    def entity_masks(self, image: np.ndarray, composition, generator, *, device: str = "cpu"):
        """The ``grounding`` source: each entity's probability > 0.5, overlaps to the highest
        probability. ``generator``: the GeneratorConfig whose pipeline gives the features."""
        from protodb.grounded.sampling import load_pipeline
        from protodb.grounded.tokens import entity_token_positions

        if self.info.get("generator_id") not in (None, generator.id):
            raise ProtodbError(
                f"grounding head {self.id} was trained on generator {self.info['generator_id']}, "
                f"not {generator.id}; train one for this vocabulary's generator"
            )
        pipe = load_pipeline(generator, device)
        feats = unet_features(pipe, image, composition.prompt, timestep=self.config.timestep)
        positions = entity_token_positions(pipe.tokenizer, composition)
        prob = self.predict(feats, positions, image.shape[:2])
        masks = resolve_overlaps(prob > 0.5, prob)
        return EntityMasks("grounding", masks, [e.label for e in composition.entities])


@dataclass
class Example:
    """One training / evaluation example: features, entity token positions and target masks
    (bool [E, H, W] at the feature grid's finest scale or the image; resized as needed)."""

    feats: Features
    positions: list[list[int]]
    masks: np.ndarray
    names: list[str] = field(default_factory=list)


def make_example(pipe, image, composition, masks: np.ndarray, timestep: int = FEATURE_T):
    from protodb.grounded.tokens import entity_token_positions

    return Example(
        unet_features(pipe, image, composition.prompt, timestep=timestep),
        entity_token_positions(pipe.tokenizer, composition),
        np.asarray(masks, bool),
        [e.name for e in composition.entities],
    )


def new_head(example: Example, dim: int = 32, timestep: int = FEATURE_T, info=None):
    channels = tuple(int(s.shape[0]) for s in example.feats.scales)
    torch.manual_seed(0)
    return GroundingHead(
        HeadConfig(channels, int(example.feats.text.shape[-1]), dim, timestep), info
    )


def train_head(head: GroundingHead, examples: list[Example], *, steps: int = 300,
               lr: float = 3e-3, seed: int = 0, on_step=None) -> list[float]:  # fmt: skip
    """Train ``head`` in place on ``examples`` (one entity of one image per step, drawn by a
    generator seeded by ``seed``): BCE + soft Dice against the mask resized to the logits.
    Returns the loss of every step."""
    if not examples:
        raise ProtodbError("no training example: the seen classes gave no image")
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    head.train()
    losses = []
    pairs = [(i, e) for i, ex in enumerate(examples) for e in range(len(ex.positions))]
    for _step in range(steps):
        i, e = pairs[int(rng.integers(len(pairs)))]
        ex = examples[i]
        logits = head(ex.feats.scales, ex.feats.text[ex.positions[e]].mean(0))
        target = torch.from_numpy(ex.masks[e].astype(np.float32))[None, None]
        target = F.interpolate(target, size=logits.shape, mode="area")[0, 0]
        prob = torch.sigmoid(logits)
        bce = F.binary_cross_entropy_with_logits(logits, target)
        dice = 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
        loss = bce + dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(1)
    head.eval()
    return losses
