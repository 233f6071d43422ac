"""The demo: build a small bank, pin a vocabulary and segment a few example images.

Without cached model weights the demo uses the offline TEST WORLD through the real path
(profile ``world-learned``) and says so: synthetic classes, support images sampled by the tiny
Stable Diffusion trained on them and shipped with protodb, cut by its own cross-attention and
described by its UNet's features; it segments labelled synthetic scenes and reports their mIoU,
so a newcomer sees a real segmentation. ``--profile world`` runs the drawn-attention oracle;
``--profile tiny`` runs the tiny models (random weights) on examples/ instead: the machinery,
not a meaningful segmentation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from protodb.models.defaults import SD_DEFAULT

DEMO_CLASSES = ("red apple", "grass", "sky")


def real_models_cached() -> bool:
    """True when Stable Diffusion 1.5 and DINOv2 are in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        from protodb.models.defaults import DINOV2_DEFAULT

        return all(
            isinstance(try_to_load_from_cache(repo, name), str)
            for repo, name in ((SD_DEFAULT, "model_index.json"), (DINOV2_DEFAULT, "config.json"))
        )
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return False


def draw_examples(out_dir: Path, size: tuple[int, int] = (160, 120)) -> list[Path]:
    """Draw three small RGB scenes (apple on grass under sky, ...) as PNGs; returns the paths."""
    from PIL import Image, ImageDraw, ImageFilter

    out_dir.mkdir(parents=True, exist_ok=True)
    w, h = size
    rng = np.random.default_rng(7)
    paths = []
    scenes = {
        "apple_on_grass": ((110, 170, 235), (70, 150, 60), [((55, 55, 105, 105), (200, 30, 35))]),
        "two_apples": (
            (150, 190, 240),
            (60, 135, 55),
            [((20, 60, 62, 102), (190, 25, 30)), ((95, 50, 145, 100), (215, 45, 40))],
        ),
        "meadow": ((95, 150, 225), (85, 160, 70), []),
    }
    for name, (sky, grass, apples) in scenes.items():
        im = Image.new("RGB", (w, h), sky)
        draw = ImageDraw.Draw(im)
        draw.rectangle((0, int(h * 0.55), w, h), fill=grass)
        for box, colour in apples:
            draw.ellipse(box, fill=colour)
            cx = (box[0] + box[2]) // 2
            draw.line((cx, box[1] - 8, cx + 3, box[1] + 2), fill=(90, 60, 20), width=3)
        noise = rng.normal(0, 8, (h, w, 3))
        arr = np.clip(
            np.asarray(im.filter(ImageFilter.GaussianBlur(0.8)), np.float32) + noise, 0, 255
        )
        path = out_dir / f"{name}.png"
        Image.fromarray(arr.astype(np.uint8)).save(path)
        paths.append(path)
    return paths


@dataclass
class DemoReport:
    """What the demo did: profile used, bank and output locations, per-image summaries, times."""

    profile: str
    bank: str
    out: str
    images: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    miou: float | None = None  # test world only: mIoU of the demo scenes against their labels


def run_demo(
    workdir: Path,
    *,
    profile: str | None = None,
    images: Path | None = None,
    n: int = 4,
    device: str | None = None,
    say: Callable[[str], None] = print,
) -> DemoReport:
    """Run the demo in ``workdir`` (bank in workdir/bank, outputs in workdir/out)."""
    import protodb
    from protodb.profiles import get_profile

    if profile is None and real_models_cached():
        profile = "default"
    elif profile is None:
        profile = "world-learned"
        say(
            "No model weights found in the Hugging Face cache, so the demo runs in the "
            "offline TEST WORLD: synthetic classes (things such as 'red disc', stuff such as "
            "'grass') through the real path: support images sampled by a tiny Stable "
            "Diffusion trained on that world (shipped with protodb), cut by its own "
            "cross-attention, described by its UNet's features. See README 'Real models' to "
            "use SD 1.5 + DINOv2 (--profile world: the drawn-attention oracle; --profile "
            "tiny: the tiny random-weight models)."
        )
    if get_profile(profile).test_world:
        from protodb.settings import torch_threads

        with torch_threads(1):  # 64 px models: one thread is as fast, and immune to a busy core
            return _world_demo(workdir, profile=profile, n=n, device=device, say=say)
    if images is None:
        images = Path("examples")
        if not any(images.glob("*.png")):
            images = workdir / "examples"
            draw_examples(images)
    db = protodb.connect(workdir / "bank", profile=profile, device=device)
    report = DemoReport(profile, db.settings.bank, str(workdir / "out"))
    t = time.perf_counter()
    for res in db.add(list(DEMO_CLASSES), n=n):
        verb = "built" if res.status == "added" else "already in the bank"
        say(f"  {res.name}: {verb} ({res.generated} images generated, {res.seconds:.1f} s)")
    report.seconds["add"] = time.perf_counter() - t
    if "demo" not in {v.name for v in db.vocabs()}:
        db.create_vocab("demo", list(DEMO_CLASSES))
    t = time.perf_counter()
    report.images = db.segment([images], vocab="demo", out=workdir / "out")
    report.seconds["segment"] = time.perf_counter() - t
    return report


def _world_demo(workdir: Path, *, profile: str, n: int, device: str | None, say) -> DemoReport:
    """The test-world demo (profile ``world-learned``, or the ``world`` oracle): every world
    class, vocabulary ``world``, four labelled scenes."""
    import protodb
    from protodb.profiles import get_profile

    db = protodb.connect(workdir / "bank", profile=profile, device=device)
    report = DemoReport(profile, db.settings.bank, str(workdir / "out"))
    t = time.perf_counter()
    db.build_world(n=n, progress=False)
    say(
        f"  test world: 8 classes in the bank, vocabulary 'world' ({time.perf_counter() - t:.1f} s)"
    )
    report.seconds["add"] = time.perf_counter() - t
    scenes = get_profile(profile).world.make_dataset(workdir / "world-scenes", n=4, seed=0)
    t = time.perf_counter()
    report.images = db.segment([scenes.root / "JPEGImages"], vocab="world", out=workdir / "out")
    report.seconds["segment"] = time.perf_counter() - t
    ev = db.evaluate("world", scenes.root, vocab="world", progress=False)
    report.miou = ev.miou
    return report
