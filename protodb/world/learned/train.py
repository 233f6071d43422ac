"""Train the learned test world: a tiny Stable Diffusion on the procedural world's scenes.

Real diffusers classes at tiny sizes: an ``AutoencoderKL`` (64 px -> 4 x 16 x 16), a
``UNet2DConditionModel`` (channels 16/32/64, cross-attention at latent 16 and 8) and a frozen,
seeded random ``CLIPTextModel`` (hidden 64, 2 layers) with the real CLIP BPE tokenizer. The VAE
is trained first (reconstruction + a small KL), then the UNet on its latents: DDPM with SD's
scaled-linear betas, epsilon prediction, min-SNR-5 loss weights, 10 % caption dropout and an EMA
of the weights, on scenes whose captions name every entity (:mod:`.scenes`). The result is a
``StableDiffusionPipeline`` in the diffusers layout (safetensors) that protodb loads like any
local model directory. Not run by CI (a smoke test runs a few steps of it).

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

    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    start = last_save = time.perf_counter()
    running = None
    unet.train()
    step = 0
    for step in range(cfg.unet_steps):
        scenes = training_batch(cfg.seed + 1000, step, cfg.batch, cfg.size)
        captions = ["" if rng.random() < cfg.caption_dropout else s.caption for s in scenes]
        with torch.no_grad():
            latents = vae.encode(_images(scenes)).latent_dist.sample(generator=gen) * sf
        noise = torch.randn(latents.shape, generator=gen)
        t = torch.randint(0, 1000, (len(scenes),), generator=gen)
        noisy = noise_sched.add_noise(latents, noise, t)
        pred = unet(noisy, t, encoder_hidden_states=embed(captions)).sample
        weight = torch.clamp(snr[t], max=cfg.min_snr_gamma) / snr[t]  # min-SNR, epsilon
        loss = (weight * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters(), strict=True):
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)
        running = loss.item() if running is None else 0.99 * running + 0.01 * loss.item()
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
