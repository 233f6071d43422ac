"""Is the learned world's cross-attention class-specific? IoU of class-token attention with the
object's mask on held-out scenes, for the right class and for a wrong one.

For every held-out scene with two or more things and every thing T in it: the scene is VAE-
encoded, noised to t (200, 300, 400), and the UNet runs once with the template prompt of a class
(no guidance); the class-token attention is captured by protodb's own capture
(:func:`protodb.synthesis.attention.capture_cross_attention`), normalised as for support images
(REFERENCE 1.2) and thresholded at 0.5. *right*: the prompt names T, IoU with T's mask. *wrong*:
the prompt names another thing W of the same scene, IoU with T's mask (high when the attention
finds "the object" whatever the prompt says).

    python -m protodb.world.learned.evaluate MODEL_DIR [--scenes 32]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from protodb.world.classes import THINGS
from protodb.world.learned.scenes import TEMPLATE, draw_training_scene

EVAL_SEED = 99_991  # held out: training draws from [seed, step, i] sequences
TIMESTEPS = (200, 300, 400)
THRESHOLD = 0.5
THING_NAMES = frozenset(c.name for c in THINGS)


@dataclass
class AttentionReport:
    """right / wrong: mean IoU over (scene, thing, timestep); per_class: class -> (right,
    wrong); pairs: how many (scene, thing) pairs were measured."""

    right: float
    wrong: float
    pairs: int
    per_class: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def attention_iou(
    model: str, *, scenes: int = 32, timesteps=TIMESTEPS, device: str = "cpu"
) -> AttentionReport:
    """Right- and wrong-class attention IoU of the pipeline at ``model`` (a local directory)."""
    import torch

    from protodb.models.diffusion import load_sd
    from protodb.synthesis.attention import capture_cross_attention, class_token_positions
    from protodb.synthesis.masks import normalise_attribution

    pipe = load_sd(model, None, device, "float32", "sigma_min")
    sched = pipe.scheduler
    alphas = torch.as_tensor(sched.alphas_cumprod, dtype=torch.float32)
    latent = pipe.unet.config.sample_size
    empty = pipe.encode_prompt("", device, 1, False)[0]
    rows: dict[str, list[tuple[float, float]]] = {}
    rng = np.random.default_rng(EVAL_SEED)
    measured = 0
    while measured < scenes:
        scene = draw_training_scene(rng)
        things = [n for n in scene.masks if n in THING_NAMES]
        if len(things) < 2:
            continue
        measured += 1
        x = torch.from_numpy(scene.image).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        with torch.no_grad():
            z0 = pipe.vae.encode(x).latent_dist.mean * pipe.vae.config.scaling_factor
        for k, thing in enumerate(things):
            other = things[(k + 1) % len(things)]
            size = scene.image.shape[:2]
            truth = scene.masks[thing]
            got = []
            for name in (thing, other):
                positions = class_token_positions(pipe.tokenizer, TEMPLATE, name)
                cond = pipe.encode_prompt(TEMPLATE.format(name), device, 1, False)[0]
                ious = []
                for t in timesteps:
                    g = torch.Generator().manual_seed(int(t) + 7 * measured)
                    noise = torch.randn(z0.shape, generator=g)
                    a = alphas[t]
                    zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
                    with (
                        torch.no_grad(),
                        capture_cross_attention(pipe.unet, positions, (latent, latent)) as store,
                    ):
                        pipe.unet(
                            zt.repeat(2, 1, 1, 1),
                            torch.tensor([t, t]),
                            encoder_hidden_states=torch.cat([empty, cond]),
                        )
                    att = normalise_attribution(store.maps()[0].numpy(), size)
                    ious.append(_iou(att > THRESHOLD, truth))
                got.append(float(np.mean(ious)))
            rows.setdefault(thing, []).append((got[0], got[1]))
    per = {
        c: (float(np.mean([r for r, _ in v])), float(np.mean([w for _, w in v])))
        for c, v in sorted(rows.items())
    }
    every = [p for v in rows.values() for p in v]
    return AttentionReport(
        right=float(np.mean([r for r, _ in every])),
        wrong=float(np.mean([w for _, w in every])),
        pairs=len(every),
        per_class=per,
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="The trained pipeline's directory.")
    p.add_argument("--scenes", type=int, default=32)
    args = p.parse_args(argv)
    report = attention_iou(args.model, scenes=args.scenes)
    print(json.dumps(report.to_dict(), indent=2))


if __name__ == "__main__":
    main()
