"""What every model loader shares: the tiny profile's name and seed, one clear error for a
missing model, quiet loading, and deterministic random weights for the tiny twins.
"""

from __future__ import annotations

import os

from protodb.errors import ModelNotFoundError
from protodb.registry import Registry

TINY = "tiny"
TINY_SEED = 20240607
TINY_VERSION = "tiny-v1"
SHIPPED_PREFIX = "protodb:"
# Models shipped inside the package, by name: "protodb:NAME" resolves to a verified local
# directory, so a generator or extractor config names it the same on every machine.
SHIPPED: Registry = Registry("shipped model")
SHIPPED.register_lazy("world-learned", "protodb.world.learned.weights")


def is_twin(model: str | None) -> bool:
    """Whether ``model`` names the tiny random-weight twin (built here, not downloaded)."""
    return model == TINY


def built_here(model: str) -> bool:
    """Whether protodb builds (the tiny twins) or ships (``protodb:NAME``) ``model`` itself, so
    using it needs no download."""
    return is_twin(model) or model.startswith(SHIPPED_PREFIX)


def resolve_model(model: str) -> str:
    """``model`` as the loaders take it: "protodb:NAME" becomes the shipped model's directory,
    its files checked against their recorded sha256 (a mismatch raises ProtodbError); any other
    hub id or path is returned as is."""
    if not model.startswith(SHIPPED_PREFIX):
        return model
    return str(SHIPPED.get(model[len(SHIPPED_PREFIX) :])())


def missing_model(what: str, model: str, err: BaseException) -> ModelNotFoundError:
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    where = (
        "HF_HUB_OFFLINE is set, so only the local cache was searched"
        if offline
        else ("it is not in the local cache and the hub could not be reached")
    )
    return ModelNotFoundError(
        f"{what} model {model!r} is not available: {where} ({type(err).__name__}). "
        f"Download it on a machine with network access (`hf download {model}`) and copy the "
        f"Hugging Face cache (HF_HOME, default ~/.cache/huggingface) here, or pass a local "
        f"directory with --model; for offline tests use --profile tiny."
    )


def from_pretrained(cls, label: str, model: str, revision: str | None, **kwargs):
    """``cls.from_pretrained(model, revision=revision, **kwargs)`` with the libraries' loading
    noise silenced; a missing model raises the one clear ModelNotFoundError (``missing_model``)."""
    quiet_loading()
    try:
        return cls.from_pretrained(model, revision=revision, **kwargs)
    except (OSError, ValueError) as err:
        raise missing_model(label, model, err) from None


def quiet_loading():
    """Silence the libraries' loading chatter (their warnings become our one clear error)."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    # their own bars ("Loading pipeline components", "Loading weights") would tear protodb's
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def fork_seeded():
    """A context in which torch's CPU RNG is seeded with TINY_SEED and restored afterwards."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def ctx():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(TINY_SEED)
            yield

    return ctx()
