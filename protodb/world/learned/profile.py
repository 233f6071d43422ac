"""The ``world-learned`` profile: the test world through protodb's real path.

Support images come from the real ``sd`` generator (DPM-Solver++, classifier-free guidance,
class-token attention captured by the usual capture) running the shipped learned pipeline
(``protodb:world-learned``); masks from the real mask sources; features from the real ``sd``
extractor on the same UNet (its layer spec derived from that UNet), optionally ensembled with the
world's colour/texture extractor (``--extractor sd --extractor world``). Nothing here draws
from ground truth: the procedural generator of the ``world`` profile is the oracle to compare
with.
"""

from __future__ import annotations

from dataclasses import replace

from protodb.errors import ProtodbError
from protodb.extractors.base import ExtractorConfig
from protodb.models.loading import TINY
from protodb.profiles import TINY_CLIP_NOTICE, TINY_REFER, Profile, register
from protodb.synthesis.generate import GeneratorConfig
from protodb.world.learned.scenes import SIZE, TEMPLATE
from protodb.world.learned.weights import MODEL
from protodb.world.profile import HOOKS

PROFILE = "world-learned"
VERSION = "world-learned-1"  # bump with the shipped weights


def learned_generator_config() -> GeneratorConfig:
    """SD sampling on the learned pipeline: 64 px, 25 DPM-Solver++ steps, guidance 4, no
    negative prompt (the model never saw one), the template the model was trained with."""
    return GeneratorConfig(
        name="sd",
        model=MODEL,
        steps=25,
        guidance=4.0,
        size=SIZE,
        negative_prompt="",
        template=TEMPLATE,
        weights=VERSION,
        unet_batch=8,
    )


def learned_extractor_config(name: str, **overrides) -> ExtractorConfig:
    """``sd`` on the learned UNet (input 64 px, t=200), or the world's colour/texture
    extractor; any other extractor is not available on this profile."""
    if name == "sd":
        from protodb.extractors.sd import SD_LAYER

        base = ExtractorConfig(
            name="sd", model=MODEL, layer=SD_LAYER, input_size=SIZE, weights=VERSION
        )
        return replace(base, **overrides)
    if name == "world":
        from protodb.world.extractor import world_extractor_config

        return world_extractor_config(**overrides)
    raise ProtodbError(
        f"extractor {name!r} is not available on profile {PROFILE!r}: its models are the learned "
        "world's; use --extractor sd (and optionally --extractor world)"
    )


register(
    Profile(
        name=PROFILE,
        generator=learned_generator_config,
        extractor=learned_extractor_config,
        extractors=("sd",),
        prefilter=False,
        prefilter_reason=f"profile {PROFILE} default: the test world has no CLIP",
        # 64 px, side / 8: its second-coarsest cross-attention, like side / 32 of SD at 1024
        attention={"model": MODEL, "weights": VERSION, "size": 64, "layer_divisor": 8},
        refer=TINY_REFER,
        refer_clip_notice=TINY_CLIP_NOTICE,
        segmenter_model=TINY,
        notice=f"profile {PROFILE}: the offline TEST WORLD through the real path (a tiny Stable "
        "Diffusion trained on the synthetic classes; not a real model)",
        test_world=True,
        world=HOOKS,
    )
)
