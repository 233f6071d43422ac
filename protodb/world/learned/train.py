"""Train the learned test world: a tiny Stable Diffusion on the procedural world's scenes.

Real diffusers classes at tiny sizes: an ``AutoencoderKL`` (64 px -> 4 x 16 x 16), a
``UNet2DConditionModel`` (channels 16/32/64, cross-attention at latent 16 and 8) and a frozen,
seeded random ``CLIPTextModel`` (hidden 64, 2 layers) with the real CLIP BPE tokenizer. The VAE
is trained first (reconstruction + a small KL), then the UNet on its latents: DDPM with SD's
scaled-linear betas, epsilon prediction, min-SNR-5 loss weights, 10 % caption dropout and an EMA
of the weights, on scenes whose captions name every entity (:mod:`.scenes`).

The UNet also gets a grounding loss on its cross-attention (TokenCompose, Wang et al. 2024): for
every entity the caption names, the attention its tokens receive (summed over its tokens, mean
over heads, per attention layer) should fall inside the entity's mask (token loss,
``(1 - inside / total)^2``) and be high there and low elsewhere (pixel loss, binary cross-
entropy against the mask pooled to the layer's grid), weighted by ``ground_weight``. What large
models learn from billions of captions (that a word's attention lands on its object) a 0.8 M-
parameter UNet cannot learn from plain denoising in an hour of CPU; the first run without it
ended with right-class attention IoU 0.16 and wrong-class 0.16. Scenes are drawn once into a
pool (``pool`` scenes, VAE posteriors and pooled masks cached), so a step is the UNet's alone.

The result is a ``StableDiffusionPipeline`` in the diffusers layout (safetensors) that protodb
loads like any local model directory. Not run by CI (a smoke test runs a few steps of it).

    python -m protodb.world.learned.train --out world-model --unet-minutes 60

Writes ``train_config.json`` (every setting) and ``train_log.jsonl`` (loss curves) beside the
pipeline, and checkpoints the pipeline every ``--save-minutes``, so a stopped run keeps its
weights. Fixed seeds: the same config gives the same weights on the same machine and threads.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from protodb.world.learned.scenes import SIZE, training_batch


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (saved as ``train_config.json``)."""

    seed: int = 0
    size: int = SIZE
    batch: int = 16
    vae_steps: int = 1500
    vae_lr: float = 1e-3
    vae_kl: float = 1e-6
    unet_steps: int = 100_000  # an upper bound: unet_minutes usually ends the run first
    unet_minutes: float = 60.0
    unet_lr: float = 4e-4
    caption_dropout: float = 0.1
    min_snr_gamma: float = 5.0
    ema_decay: float = 0.999
    save_minutes: float = 10.0
    threads: int = 1
    text_hidden: int = 64
    ground_weight: float = 0.1
    pool: int = 16_384
    template_share: float = 0.0
    resume: str = ""


def build_models(cfg: TrainConfig):
    """(vae, unet, text_encoder, tokenizer), freshly initialised from ``cfg.seed``."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    from protodb.models.diffusion import tiny_text_config, tiny_tokenizer

    torch.manual_seed(cfg.seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32, 64),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=cfg.size,
    )
    unet = UNet2DConditionModel(
        sample_size=cfg.size // 4,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cfg.text_hidden,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    text_encoder = CLIPTextModel(tiny_text_config(cfg.text_hidden)).eval()
    text_encoder.requires_grad_(False)
    return vae, unet, text_encoder, tiny_tokenizer()


def _images(scenes) -> torch.Tensor:  # noqa: F821 - torch is imported lazily
    import torch

    x = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


class _Log:
    """Appends one JSON line per logged step to ``train_log.jsonl``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = time.perf_counter()

    def write(self, stage: str, step: int, loss: float) -> None:
        row = {"stage": stage, "step": step, "loss": loss, "s": time.perf_counter() - self.start}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def train_vae(vae, cfg: TrainConfig, log: _Log, progress=None) -> float:
    """Train ``vae`` in place; returns its latent scaling factor (1 / std of the latents)."""
    import torch

    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr)
    vae.train()
    running = None
    for step in range(cfg.vae_steps):
        x = _images(training_batch(cfg.seed, step, cfg.batch, cfg.size))
        dist = vae.encode(x).latent_dist
        recon = vae.decode(dist.sample()).sample
        loss = (recon - x).abs().mean() + (recon - x).pow(2).mean() + cfg.vae_kl * dist.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0 or step == cfg.vae_steps - 1:
            log.write("vae", step, running)
        if progress is not None:
            progress(step)
    vae.eval()
    with torch.no_grad():
        x = _images(training_batch(cfg.seed + 1, 0, 64, cfg.size))
        std = float(vae.encode(x).latent_dist.mean.std())
    return 1.0 / max(std, 1e-6)


MAX_ENTITIES = 5  # three things and two stuff classes


def entity_token_positions(tokenizer, caption: str, name: str) -> list[int]:
    """Positions of ``name``'s tokens in the tokenized ``caption`` (start-of-text at 0); []
    when the caption does not name it."""
    ids = tokenizer(caption, truncation=True, max_length=77).input_ids
    want = tokenizer(name, add_special_tokens=False).input_ids
    for i in range(len(ids) - len(want) + 1):
        if ids[i : i + len(want)] == want:
            return list(range(i, i + len(want)))
    return []


@dataclass
class ScenePool:
    """Training scenes drawn once. moments: float32 [P, 8, L, L] (the VAE posterior's mean and
    log-variance, L = latent side); captions: P strings; masks: float32 [P, E, L, L] (each named
    entity's mask, area-pooled to the latent grid, in [0, 1]); tokens: float32 [P, E, 77] (1 at
    the entity's caption tokens; an all-zero row is an unused entity slot)."""

    moments: torch.Tensor  # noqa: F821
    captions: list[str]
    masks: torch.Tensor  # noqa: F821
    tokens: torch.Tensor  # noqa: F821


def _pool_caption(scene, cfg: TrainConfig, index: int) -> str:
    """The scene's caption, or, for a ``template_share`` of scenes with two or more things, the
    template prompt naming one of them (what protodb's support images are sampled with, and
    what the attention evaluation asks): the others are then unnamed, and only the named thing
    is grounded."""
    from protodb.world.learned.evaluate import THING_NAMES
    from protodb.world.learned.scenes import TEMPLATE

    things = [n for n in scene.masks if n in THING_NAMES]
    rng = np.random.default_rng([cfg.seed, 77, index])
    if len(things) >= 2 and rng.random() < cfg.template_share:
        return TEMPLATE.format(things[rng.integers(len(things))])
    return scene.caption


def build_pool(vae, tokenizer, cfg: TrainConfig, progress=None) -> ScenePool:
    """Draw ``cfg.pool`` scenes (seeded by ``cfg.seed``) and encode them with ``vae``."""
    import torch
    import torch.nn.functional as F

    side = cfg.size // 4
    moments, captions, masks, tokens = [], [], [], []
    for step in range(math.ceil(cfg.pool / cfg.batch)):
        scenes = training_batch(cfg.seed + 1000, step, cfg.batch, cfg.size)
        with torch.no_grad():
            moments.append(vae.encode(_images(scenes)).latent_dist.parameters)
        for i, s in enumerate(scenes):
            s.caption = _pool_caption(s, cfg, step * cfg.batch + i)
            m = torch.zeros(MAX_ENTITIES, cfg.size, cfg.size)
            t = torch.zeros(MAX_ENTITIES, 77)
            k = 0
            for name, mask in s.masks.items():
                pos = entity_token_positions(tokenizer, s.caption, name)
                if pos:
                    m[k] = torch.from_numpy(mask.astype(np.float32))
                    t[k, pos] = 1.0
                    k += 1
            masks.append(F.adaptive_avg_pool2d(m, side))
            tokens.append(t)
            captions.append(s.caption)
        if progress is not None:
            progress(step)
    n = cfg.pool
    return ScenePool(
        torch.cat(moments)[:n], captions[:n], torch.stack(masks)[:n], torch.stack(tokens)[:n]
    )


class KeepAttentionProcessor:
    """A cross-attention processor for training: plain attention (as diffusers' classic
    ``AttnProcessor`` for a transformer block's ``attn2``) whose probabilities, float32
    [B*heads, N, 77] with their gradients, are appended to ``kept`` as (probs, heads)."""

    def __init__(self, kept: list) -> None:
        self.kept = kept

    def __call__(
        self,
        attn,
        hidden_states,
        encoder_hidden_states=None,
        attention_mask=None,
        temb=None,
        *args,
        **kwargs,
    ):
        import torch

        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        value = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(query, key, None)
        self.kept.append((probs, attn.heads))
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor


def grounding_loss(kept: list, masks, tokens):
    """The token and pixel grounding losses (module docstring), averaged over the named
    entities of the batch and over the attention layers in ``kept``. masks: [B, E, L, L];
    tokens: [B, E, 77]. Returns a scalar tensor (0 when nothing is named)."""
    import torch
    import torch.nn.functional as F

    valid = tokens.amax(-1)  # [B, E]
    if not kept or float(valid.sum()) == 0:
        return torch.zeros(())
    total = torch.zeros(())
    for probs, heads in kept:
        bh, n, k = probs.shape
        p = probs.view(bh // heads, heads, n, k).mean(1)
        a = torch.einsum("bnk,bek->ben", p, tokens).clamp(1e-6, 1 - 1e-6)  # [B, E, N]
        m = F.adaptive_avg_pool2d(masks, math.isqrt(n)).flatten(2)
        inside = (a * m).sum(-1) / a.sum(-1)
        token = (1 - inside).pow(2)
        pixel = F.binary_cross_entropy(a, m, reduction="none").mean(-1)
        total = total + ((token + pixel) * valid).sum() / valid.sum()
    return total / len(kept)


def _pipeline(vae, unet, text_encoder, tokenizer):
    from diffusers import StableDiffusionPipeline

    from protodb.models.diffusion import sd_scheduler

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=sd_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def train_unet(vae, unet, text_encoder, tokenizer, cfg: TrainConfig, log: _Log, out: Path):
    """Train ``unet`` on ``vae`` latents; returns its EMA copy (what gets shipped)."""
    import copy

    import torch
    from diffusers import DDPMScheduler

    noise_sched = DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
    )
    alphas = noise_sched.alphas_cumprod
    snr = alphas / (1 - alphas)
    sf = vae.config.scaling_factor
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.unet_lr, weight_decay=1e-2)
    cache: dict[str, torch.Tensor] = {}

    def embed(captions: list[str]) -> torch.Tensor:
        missing = [c for c in set(captions) if c not in cache]
        if missing:
            ids = tokenizer(
                missing, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
            ).input_ids
            with torch.no_grad():
                states = text_encoder(ids)[0]
            cache.update(zip(missing, states, strict=True))
        return torch.stack([cache[c] for c in captions])

    pool = build_pool(vae, tokenizer, cfg)
    log.write("pool", len(pool.captions), 0.0)
    kept: list = []
    keep = KeepAttentionProcessor(kept)
    unet.set_attn_processor(
        {n: keep if n.endswith("attn2.processor") else p for n, p in unet.attn_processors.items()}
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    start = last_save = time.perf_counter()
    running = running_ground = None
    unet.train()
    step = 0
    for step in range(cfg.unet_steps):
        idx = torch.from_numpy(rng.integers(0, len(pool.captions), cfg.batch))
        drop = torch.from_numpy(rng.random(cfg.batch) < cfg.caption_dropout)
        captions = [
            "" if d else pool.captions[i] for i, d in zip(idx.tolist(), drop.tolist(), strict=True)
        ]
        mean, logvar = pool.moments[idx].chunk(2, dim=1)
        std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
        latents = (mean + std * torch.randn(mean.shape, generator=gen)) * sf
        noise = torch.randn(latents.shape, generator=gen)
        t = torch.randint(0, 1000, (cfg.batch,), generator=gen)
        noisy = noise_sched.add_noise(latents, noise, t)
        kept.clear()
        pred = unet(noisy, t, encoder_hidden_states=embed(captions)).sample
        weight = torch.clamp(snr[t], max=cfg.min_snr_gamma) / snr[t]  # min-SNR, epsilon
        denoise = (weight * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()
        tokens = pool.tokens[idx] * (~drop).float()[:, None, None]
        ground = grounding_loss(kept, pool.masks[idx], tokens)
        kept.clear()
        loss = denoise + cfg.ground_weight * ground
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters(), strict=True):
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)
        g = float(ground.detach())
        running_ground = g if running_ground is None else 0.99 * running_ground + 0.01 * g
        if step % 50 == 0:
            log.write("ground", step, running_ground)
        d = float(denoise.detach())
        running = d if running is None else 0.99 * running + 0.01 * d
        if step % 50 == 0:
            log.write("unet", step, running)
        now = time.perf_counter()
        if now - last_save > cfg.save_minutes * 60:
            _pipeline(vae, ema, text_encoder, tokenizer).save_pretrained(out)
            last_save = now
        if now - start > cfg.unet_minutes * 60:
            break
    log.write("unet", step, float(running or math.nan))
    return ema


def _load_run(src: str, vae, unet, text_encoder, out: Path) -> None:
    """Continue from a saved run (``--resume DIR``): its VAE (trained; its scaling factor kept),
    its UNet (the EMA weights it saved, now trained further) and its text encoder; its config
    and loss log are kept beside the new ones (``resumed_config.json``, ``resumed_log.jsonl``)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    src_dir = Path(src)
    saved = AutoencoderKL.from_pretrained(src_dir, subfolder="vae")
    vae.load_state_dict(saved.state_dict())
    vae.register_to_config(scaling_factor=saved.config.scaling_factor)
    unet.load_state_dict(
        UNet2DConditionModel.from_pretrained(src_dir, subfolder="unet").state_dict()
    )
    te = CLIPTextModel.from_pretrained(src_dir, subfolder="text_encoder")
    text_encoder.load_state_dict(te.state_dict())
    for mine, kept in (
        ("train_config.json", "resumed_config.json"),
        ("train_log.jsonl", "resumed_log.jsonl"),
    ):
        if (src_dir / mine).is_file():
            (out / kept).write_text((src_dir / mine).read_text())


def train(cfg: TrainConfig, out: str | Path) -> Path:
    """Run the whole training into ``out`` (created); returns the pipeline directory."""
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    (out / "train_log.jsonl").unlink(missing_ok=True)
    log = _Log(out / "train_log.jsonl")
    vae, unet, text_encoder, tokenizer = build_models(cfg)
    if cfg.resume:
        _load_run(cfg.resume, vae, unet, text_encoder, out)
    else:
        scale = train_vae(vae, cfg, log)
        vae.register_to_config(scaling_factor=scale)
    vae.requires_grad_(False)
    ema = train_unet(vae, unet, text_encoder, tokenizer, cfg, log, out)
    _pipeline(vae, ema, text_encoder, tokenizer).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="Directory for the pipeline, config and log.")
    for f in TrainConfig.__dataclass_fields__.values():
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    args = vars(p.parse_args(argv))
    out = args.pop("out")
    train(TrainConfig(**args), out)
    print(f"trained pipeline in {out}")


if __name__ == "__main__":
    main()
