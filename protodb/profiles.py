"""Profiles as data: everything that differs between ``default``, ``tiny`` and the test world.

A :class:`Profile` is one frozen record: the generator and extractor configs ``add`` uses, the
query defaults (the CLIP pre-filter on or off, and why), the referring defaults, the model the
segmenters run, the notice a user sees, and, for the offline test world, the hooks its
test-world-only features need. Code reads a profile's attributes; it never compares names.

Profiles live in one registry, :data:`PROFILES`; ``default`` and ``tiny`` are defined here, and
the test world registers its own (``world``, ``world-learned``) from ``protodb.world``, named
here lazily so ``import protodb`` never loads the world. Fields that hold code (config
factories) are callables or ``"module:attr"`` strings resolved on first use: the stage modules
that build configs read this module, so this module names them without importing them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from protodb.models.loading import TINY, TINY_VERSION
from protodb.registry import Registry

Factory = Callable[..., Any] | str  # a callable, or "module:attr" naming one


def _resolve(ref: Factory) -> Callable[..., Any]:
    if callable(ref):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def _given(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides a caller actually gave (None leaves the profile's value)."""
    return {k: v for k, v in overrides.items() if v is not None}


@dataclass(frozen=True)
class TestWorld:
    """What the test-world-only features (synthetic datasets, reference masks, the grounding
    head's scenes, the demo) take from the offline test world, given by its profiles.

    class_names: the world's classes in label order; class_kind(name) -> "thing" or "stuff";
    colour_region(image uint8 [H, W, 3], name) -> bool [H, W], the pixels nearest the class's
    colour; draw_training_scene(rng) -> a scene with .image, .caption and .masks (name -> bool
    [H, W]); make_dataset(root, n=, seed=) -> a labelled dataset in the VOC layout (.root,
    .ids, .classes); make_referring_set(root, n=, seed=) -> the path of its pairs.jsonl;
    build_bank(runtime, n=, seed=, vocab=, extractors=, mask_source=, progress=) -> the pinned
    Vocabulary of a bank of every world class (protodb.world.bank.build_bank);
    report(workdir, n=, images=, seed=, device=, say=) -> the world report."""

    __test__ = False  # not a pytest class, despite the name

    class_names: tuple[str, ...]
    class_kind: Callable[[str], str]
    colour_region: Callable[..., Any]
    draw_training_scene: Callable[..., Any]
    make_dataset: Callable[..., Any]
    make_referring_set: Callable[..., Any]
    build_bank: Callable[..., Any]
    report: Callable[..., Any]


@dataclass(frozen=True)
class Profile:
    """One profile. Config factories: ``generator() -> GeneratorConfig`` and
    ``extractor(name, **overrides) -> ExtractorConfig`` (raising ProtodbError for an extractor
    the profile does not offer).

    extractors: what ``add`` uses when none is named; prefilter / prefilter_reason: whether the
    CLIP pre-filter runs by default, and the reason the CLI prints when that default decides
    (its CLIP goes with the vocabulary's extractors: QueryConfig); attention: the referring
    attention config's fields over ReferAttentionConfig's (None: the profile has no diffusion
    model, and ``no_attention`` says what to use instead); refer: ReferConfig fields over its
    defaults (``proposals``: ProposalConfig fields); refer_clip_notice: what the CLI says of the
    discriminative scores (None: nothing); segmenter_model: the model the segmenters run (None:
    each segmenter's own default); notice: the line shown to a user of this profile (None:
    none); test_world: the offline test world (its commands and demo); world: its hooks."""

    name: str
    generator: Factory
    extractor: Factory
    extractors: tuple[str, ...]
    prefilter: bool
    prefilter_reason: str
    attention: Mapping[str, Any] | None = field(default_factory=dict, hash=False)
    no_attention: str = ""
    refer: Mapping[str, Any] = field(default_factory=dict, hash=False)
    refer_clip_notice: str | None = None
    segmenter_model: str | None = None
    notice: str | None = None
    test_world: bool = False
    world: TestWorld | None = None

    def generator_config(self, **overrides):
        """The profile's GeneratorConfig with ``overrides`` (None leaves the profile's value)."""
        return replace(_resolve(self.generator)(), **_given(overrides))

    def extractor_config(self, name: str, **overrides):
        """The profile's ExtractorConfig of extractor ``name`` with ``overrides``."""
        return _resolve(self.extractor)(name, **_given(overrides))


PROFILES: Registry[Profile] = Registry("profile")


def register(profile: Profile) -> Profile:
    """Register ``profile`` under its name (the test world calls this from protodb.world)."""
    return PROFILES.register(profile.name)(profile)


def get_profile(profile: str | Profile) -> Profile:
    """The Profile named ``profile`` (a Profile passes through); an unknown name raises
    ProtodbError listing the known ones."""
    return profile if isinstance(profile, Profile) else PROFILES.get(profile)


def test_world() -> TestWorld:
    """The offline test world's hooks (registered by protodb.world with its profiles)."""
    world = get_profile("world").world
    assert world is not None, "the world profile registers its hooks"
    return world


test_world.__test__ = False  # type: ignore[attr-defined]  # not a pytest test

# The tiny twins: small random-weight models (offline tests); outputs are not meaningful.
# Referring on the 64 px profiles: the generator-only proposals (attention) of more than 1 %
# of the image, and the tiny random-weight CLIP (its scores are noise); with --source sam, the
# tiny SAM twin on a 4 x 4 grid (the reference's ViT-H at 32 x 32 would take minutes).
TINY_REFER = {
    "proposals": {
        "source": "attention",
        "min_area_px": 0,
        "min_area_ratio": 0.01,
        "sam_model": TINY,
        "points_per_side": 4,
    },
    "clip_model": TINY,
}
TINY_CLIP_NOTICE = "discriminative scores come from the tiny random-weight CLIP: they are noise"

# The paper's best ensemble (Table 2): the default profile's extractors for ``add``.
PAPER_ENSEMBLE = ("sd", "dino", "clip")

register(
    Profile(
        name="default",
        # SD 1.5 at 512 px (REFERENCE 1.1); the paper's best ensemble (sd, dino, clip; Table 2)
        generator="protodb.synthesis.generate:GeneratorConfig",
        extractor="protodb.extractors.factory:real_extractor_config",
        extractors=PAPER_ENSEMBLE,
        prefilter=True,  # as in the paper
        prefilter_reason="profile default",
    )
)
register(
    Profile(
        name="tiny",
        generator="protodb.synthesis.generate:tiny_generator_config",
        extractor="protodb.extractors.factory:tiny_extractor_config",
        extractors=("dinov2",),  # alone: keeps offline runs fast
        prefilter=False,
        prefilter_reason="profile tiny default: random CLIP",
        # the coarsest cross-attention of the tiny UNet at 64 px (side / 4)
        attention={"model": TINY, "weights": TINY_VERSION, "size": 64, "layer_divisor": 4},
        refer=TINY_REFER,
        refer_clip_notice=TINY_CLIP_NOTICE,
        segmenter_model=TINY,
        notice="profile tiny: tiny models with random weights "
        "(offline testing; outputs are not meaningful)",
    )
)
# The offline TEST WORLD registers these from protodb.world when first asked for.
PROFILES.register_lazy("world", "protodb.world.profile")
PROFILES.register_lazy("world-learned", "protodb.world.learned.profile")
