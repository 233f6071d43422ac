"""The ``world`` profile (the drawn-attention oracle) and the test world's hooks.

The profile runs the world's procedural generator and colour/texture extractor; the hooks
(:class:`protodb.profiles.TestWorld`) are what the test-world-only features outside this package
use: the class list, a class's kind, the colour detector, training scenes, datasets, the
referring set and the report. Both the
``world`` and ``world-learned`` profiles carry them. Registered when protodb.profiles is first
asked for "world".
"""

from __future__ import annotations

from protodb.errors import ProtodbError
from protodb.models.loading import TINY
from protodb.profiles import TINY_CLIP_NOTICE, TINY_REFER, Profile, TestWorld, register
from protodb.world.classes import CLASS_NAMES, WORLD, world_class
from protodb.world.extractor import world_extractor_config
from protodb.world.generator import world_generator_config


def _class_kind(name: str) -> str:
    return world_class(name).kind


def _colour_region(image, name: str):
    from protodb.world.learned.detect import colour_region

    return colour_region(image, name)


def _draw_training_scene(rng, *args, **kwargs):
    from protodb.world.learned.scenes import draw_training_scene

    return draw_training_scene(rng, *args, **kwargs)


def _make_dataset(root, **kwargs):
    from protodb.world.dataset import make_dataset

    return make_dataset(root, **kwargs)


def _make_referring_set(root, **kwargs):
    from protodb.world.referring import make_referring_set

    return make_referring_set(root, **kwargs)


def _build_bank(runtime, **kwargs):
    from protodb.world.bank import build_bank

    return build_bank(runtime, **kwargs)


def _report(workdir, **kwargs):
    from protodb.world.report import world_report

    return world_report(workdir, **kwargs)


HOOKS = TestWorld(
    class_names=tuple(CLASS_NAMES),
    class_kind=_class_kind,
    colour_region=_colour_region,
    draw_training_scene=_draw_training_scene,
    make_dataset=_make_dataset,
    make_referring_set=_make_referring_set,
    build_bank=_build_bank,
    report=_report,
)


def world_profile_extractor(name: str, **overrides):
    """The world profile's only extractor, its own ``world``."""
    if name != WORLD:
        raise ProtodbError(
            f"extractor {name!r} with profile {WORLD!r}: the test world's extractor 'world' and "
            "profile 'world' go together; use --profile world (no --extractor)"
        )
    return world_extractor_config(**overrides)


PROFILE = register(
    Profile(
        name=WORLD,
        generator=world_generator_config,
        extractor=world_profile_extractor,
        extractors=(WORLD,),
        prefilter=False,
        prefilter_reason="profile world default: the test world has no text encoder",
        attention=None,
        no_attention="profile 'world' has no diffusion model to read attention from; use "
        "--profile world-learned (the learned test world) or tiny",
        refer=TINY_REFER,
        refer_clip_notice=TINY_CLIP_NOTICE,
        segmenter_model=TINY,
        notice="profile world: the offline TEST WORLD (synthetic classes, procedural generator "
        "and extractor; not real models)",
        test_world=True,
        world=HOOKS,
    )
)
