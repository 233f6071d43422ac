"""Check that every model a command will need can be loaded, before any work starts.

``add`` samples for minutes before its extractors load; without this check a missing DINO or
CLIP would fail only then. :func:`preflight` resolves each model the way its loader will, without
loading it:

- ``tiny`` twins are built in place and always available;
- ``protodb:NAME`` (a model shipped in the package) is resolved and its files checked against
  their recorded sha256;
- a local directory must exist and hold the loader's config file;
- a hub id must be in the local Hugging Face cache; when it is not, and the hub may be asked
  (HF_HUB_OFFLINE unset), the hub is asked once whether it exists (a few seconds at most), so
  the download happens at load time as before;
- an open_clip ``ARCH/TAG`` must name a known architecture and tag, with its weights cached (or
  a local weights file as the tag).

A failure raises the one clear :class:`protodb.errors.ModelNotFoundError` the loaders raise.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from protodb.errors import ModelNotFoundError
from protodb.models.loading import SHIPPED_PREFIX, TINY, missing_model, resolve_model

HUB_TIMEOUT_S = 10.0
# the file a local directory must hold, per kind of model
_CONFIG_FILE = {"diffusers": "model_index.json", "transformers": "config.json"}


@dataclass(frozen=True)
class ModelNeed:
    """One model a command needs. label: what it is for the user ("Stable Diffusion", "DINO");
    model: hub id, local path, "tiny" or "protodb:NAME" (open_clip: "ARCH/TAG"); kind:
    "diffusers", "transformers" or "open_clip"."""

    label: str
    model: str
    revision: str | None = None
    kind: str = "transformers"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


def _check_hub(need: ModelNeed, repo: str, files: Iterable[str]) -> str:
    """'cache' when any of ``files`` of ``repo`` is cached, else 'hub' when the hub knows it."""
    from huggingface_hub import try_to_load_from_cache

    for name in files:
        try:
            found = try_to_load_from_cache(repo, name, revision=need.revision)
        except ValueError as err:  # not a valid hub id (huggingface_hub's HFValidationError)
            raise missing_model(need.label, need.model, err) from None
        if isinstance(found, str):
            return "cache"
    if _offline():
        raise missing_model(need.label, need.model, FileNotFoundError(repo))
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(repo, revision=need.revision, timeout=HUB_TIMEOUT_S)
    except Exception as err:  # noqa: BLE001 - any failure to reach or find it is the same answer
        raise missing_model(need.label, need.model, err) from None
    return "hub"


def _check_open_clip(need: ModelNeed) -> str:
    import open_clip

    arch, _, tag = need.model.partition("/")
    if arch not in open_clip.list_models():
        raise missing_model(need.label, need.model, ValueError(f"unknown architecture {arch}"))
    if not tag:
        return "random"
    try:
        local = Path(tag).is_file()
    except (OSError, ValueError) as err:
        raise missing_model(need.label, need.model, err) from None
    if local:
        return "local"
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        raise missing_model(need.label, need.model, ValueError(f"unknown weights tag {tag}"))
    repo = (cfg.get("hf_hub") or "").strip("/")
    if not repo:  # weights only at a URL: open_clip's own cache, checked at load time
        return "url"
    return _check_hub(need, repo, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"))


def check_model(need: ModelNeed) -> str:
    """Where ``need`` will load from: "tiny", "shipped", "local", "cache", "hub", "random" or
    "url"; raises ModelNotFoundError (one line) when it cannot be loaded."""
    if not need.model.strip():
        raise ModelNotFoundError(
            f"{need.label} model is empty; name a hub id or a local directory (--model)"
        )
    if need.model == TINY:
        return "tiny"
    if need.kind == "open_clip":
        return _check_open_clip(need)
    if need.model.startswith(SHIPPED_PREFIX):
        resolve_model(need.model)
        return "shipped"
    config = _CONFIG_FILE.get(need.kind, "config.json")
    path = Path(need.model).expanduser()
    try:
        is_dir = path.is_dir()
    except (OSError, ValueError) as err:  # a name too long for a path, or with a NUL
        raise missing_model(need.label, need.model, err) from None
    if is_dir:
        if not (path / config).is_file():
            raise missing_model(need.label, need.model, FileNotFoundError(str(path / config)))
        return "local"
    if path.is_absolute() or need.model.startswith((".", "~")) or need.model.count("/") > 1:
        raise missing_model(need.label, need.model, FileNotFoundError(need.model))
    return _check_hub(need, need.model, (config,))


def preflight(needs: Iterable[ModelNeed]) -> dict[str, str]:
    """Check every distinct model of ``needs``; returns {model: where}. The first missing one
    raises ModelNotFoundError."""
    seen: dict[str, str] = {}
    for need in needs:
        if need.model not in seen:
            seen[need.model] = check_model(need)
    return seen


def generator_need(config) -> ModelNeed:
    """The model a generator config (protodb.synthesis.generate.GeneratorConfig) loads."""
    if config.name != "sd":
        return ModelNeed("generator", TINY)
    return ModelNeed("Stable Diffusion", config.model, config.revision, "diffusers")


def extractor_need(config) -> ModelNeed:
    """The model an extractor config (protodb.extractors.base.ExtractorConfig) loads."""
    kinds = {"sd": "diffusers", "clip": "open_clip"}
    labels = {"sd": "Stable Diffusion", "clip": "CLIP", "dino": "DINO", "dinov2": "DINOv2"}
    name = config.name
    if name not in ("sd", "clip", "dino", "dinov2", "mae"):
        return ModelNeed(name, TINY)  # the world's extractors need no weights
    label, kind = labels.get(name, name.upper()), kinds.get(name, "transformers")
    return ModelNeed(label, config.model, config.revision, kind)


__all__ = [
    "ModelNeed",
    "ModelNotFoundError",
    "check_model",
    "extractor_need",
    "generator_need",
    "preflight",
]
