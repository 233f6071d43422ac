"""Generator ``world`` and the world profile's generator config: support images of a world class,
with an attribution map that imitates cross-attention (no model involved).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from protodb.errors import ProtodbError
from protodb.synthesis.generate import (
    GENERATORS,
    GeneratorConfig,
    SupportImage,
    image_seed,
)
from protodb.world.classes import ATTN_STRIDE, SUPPORT_SIZE, WORLD, WORLD_VERSION, world_class
from protodb.world.draw import draw_support, fake_attention


def world_generator_config() -> GeneratorConfig:
    """The world profile's generator config (the SD-only fields are set to neutral values)."""
    return GeneratorConfig(
        name=WORLD,
        model=WORLD,
        scheduler="none",
        final_sigmas_type="none",
        steps=1,
        guidance=1.0,
        size=SUPPORT_SIZE,
        negative_prompt="",
        template="{}",
        weights=WORLD_VERSION,
    )


@GENERATORS.register(WORLD)
def generate_world(
    class_name: str,
    class_key: str,
    config: GeneratorConfig,
    seed: int,
    indices: Sequence[int],
    *,
    device: str = "cpu",
    batch_size: int = 1,
    progress: Callable[[int], None] | None = None,
    on_step: Callable[[float], None] | None = None,
) -> list[SupportImage]:
    """TEST WORLD generator: support images ``indices`` of a world class (no model involved).

    image: uint8 [S, S, 3], S = config.size; attribution: float32 [S/4, S/4] >= 0. Each image
    depends only on (class, config, seed, index). ``progress`` / ``on_step``: called once per
    image (there are no denoising steps)."""
    cls = world_class(class_name)
    if config.size % ATTN_STRIDE:
        raise ProtodbError(f"size={config.size} must be a multiple of {ATTN_STRIDE} for the world")
    out = []
    for i in indices:
        rng = np.random.default_rng(image_seed(class_key, config.id, seed, i))
        image, mask = draw_support(cls, config.size, rng)
        out.append(SupportImage(index=i, image=image, attribution=fake_attention(mask, rng)))
        if progress is not None:
            progress(1)
        if on_step is not None:
            on_step(1.0)
    return out
