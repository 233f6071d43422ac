"""Building extractors: each extractor's defaults on the real models and on their tiny twins
(the configs the ``default`` and ``tiny`` profiles use, protodb.profiles), and the per-process
cache of built extractors.
"""

from __future__ import annotations

from dataclasses import replace

from protodb.errors import ProtodbError
from protodb.extractors.base import EXTRACTORS, Extractor, ExtractorConfig
from protodb.extractors.sd import SD_LAYER
from protodb.models.defaults import (
    CLIP_DEFAULT,
    DINO_DEFAULT,
    DINOV2_DEFAULT,
    MAE_DEFAULT,
    SD_DEFAULT,
)
from protodb.models.loading import TINY, TINY_VERSION, is_twin
from protodb.profiles import Profile, get_profile

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


def _defaults(name: str) -> tuple[str, str, int]:
    if name not in DEFAULTS:  # an extractor that comes with its own profile
        raise ProtodbError(
            f"extractor {name!r} has no config on the real models or their tiny twins: the test "
            f"world's extractor 'world' and profile 'world' go together; use --profile world "
            "(no --extractor)"
        )
    return DEFAULTS[name]


def real_extractor_config(name: str, **overrides) -> ExtractorConfig:
    """Extractor ``name`` on its real default model (the ``default`` profile's)."""
    model, layer, size = _defaults(name)
    return replace(
        ExtractorConfig(name=name, model=model, layer=layer, input_size=size), **overrides
    )


def tiny_extractor_config(name: str, **overrides) -> ExtractorConfig:
    """Extractor ``name`` on its tiny random-weight twin: 64 px input, the tiny weights' version
    (the ``tiny`` profile's)."""
    layer = TINY_LAYERS.get(name, _defaults(name)[1])
    # a model named instead of the tiny twin is no longer the tiny weights' version
    weights = TINY_VERSION if is_twin(overrides.get("model", TINY)) else None
    base = ExtractorConfig(name=name, model=TINY, weights=weights, input_size=64, layer=layer)
    return replace(base, **overrides)


def default_extractor_config(
    profile: str | Profile, name: str = "dinov2", **overrides
) -> ExtractorConfig:
    """The config of extractor ``name`` on a profile (Profile.extractor_config), with
    ``overrides`` (ExtractorConfig fields; None leaves the profile's value)."""
    EXTRACTORS.get(name)
    return get_profile(profile).extractor_config(name, **overrides)


def default_extractor_names(profile: str | Profile) -> list[str]:
    """The extractors ``add`` uses when none is named (Profile.extractors): the paper's best
    ensemble (sd, dino, clip; REFERENCE 1.4) on the real profile; dinov2 alone on the tiny
    profile, which keeps offline runs fast; the test world's own on its profiles."""
    return list(get_profile(profile).extractors)


_CACHE: dict[tuple[str, str], Extractor] = {}


def images_per_call(device: str) -> int:
    """Images (support images, or windows of a target) per extractor call: 8 on a GPU, 2 on
    the CPU, where at the paper's size a batch of 8 through Stable Diffusion holds 8 x 7680 x
    64 x 64 float32 features (1 GiB) on top of the UNet's activations. Results never depend
    on it (up to float rounding)."""
    return 8 if str(device).startswith("cuda") else 2


def get_extractor(config: ExtractorConfig, device: str = "cpu") -> Extractor:
    """Build (or reuse, per process) the extractor for ``config`` on ``device``."""
    key = (config.id, device)
    if key not in _CACHE:
        cls = EXTRACTORS.get(config.name)
        _CACHE[key] = cls(config, device)
    return _CACHE[key]


# The model loaders whose caches hold weights: (module, function names).
_LOADERS = (
    ("protodb.models.diffusion", ("load_sd", "_load_sd_modules")),
    ("protodb.models.vision", ("load_dinov2", "load_dino", "load_mae", "load_sam")),
    ("protodb.models.openclip", ("load_clip",)),
)


def loaded_extractors() -> set[tuple[str, str]]:
    """(extractor id, device) of every extractor built in this process and still cached."""
    return set(_CACHE)


def release_models() -> None:
    """Drop every cached extractor and every model the loaders cached (Stable Diffusion, the
    ViTs, CLIP), then collect, so their memory returns to the system once nothing else (a
    live Segmenter, say) holds them; the next use loads them again."""
    import gc
    import sys

    _CACHE.clear()
    for module, names in _LOADERS:
        loaded = sys.modules.get(module)
        for name in names if loaded is not None else ():
            getattr(loaded, name).cache_clear()
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
