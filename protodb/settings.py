"""Run-time settings: profile, device and where the bank lives.

Resolution order for each setting: the explicit argument, then the environment variable, then
the default. Nothing here imports torch unless a device must actually be resolved.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from protodb import profiles
from protodb.errors import ProtodbError

# The names of protodb.profiles.PROFILES (each profile's record lives there): default, tiny,
# world (the offline TEST WORLD) and world-learned (that world through the real path)
PROFILES = tuple(profiles.PROFILES.names())
DEVICES = ("auto", "cpu", "cuda")
ENV_PROFILE = "PROTODB_PROFILE"
ENV_BANK = "PROTODB_BANK"
ENV_DEVICE = "PROTODB_DEVICE"


def resolve_profile(profile: str | None = None) -> str:
    """Return the profile's name, one of protodb.profiles.PROFILES: 'default' (real models by
    hub id or path), 'tiny' (tiny random-weight twins), 'world' (the offline test world's
    procedural generator and extractor) or 'world-learned' (the test world through the real
    path). The name is checked without loading the profile."""
    value = profile or os.environ.get(ENV_PROFILE) or "default"
    if value not in profiles.PROFILES:
        raise ProtodbError(
            f"unknown profile {value!r}; use one of {', '.join(PROFILES)} "
            f"(--profile or {ENV_PROFILE})"
        )
    return value


def default_bank_uri() -> str:
    """The per-user bank: <user data dir>/protodb/bank."""
    from platformdirs import user_data_dir

    return str(Path(user_data_dir("protodb", appauthor=False)) / "bank")


def resolve_bank_uri(bank: str | os.PathLike | None = None) -> str:
    """Return the bank URI: the argument, else $PROTODB_BANK, else the per-user data directory.

    Local paths are made absolute; URIs with a scheme (s3://, gs://, az://, ...) pass unchanged.
    """
    value = str(bank) if bank is not None else os.environ.get(ENV_BANK) or default_bank_uri()
    if not value.strip():
        raise ProtodbError("empty bank location; pass --bank DIR_OR_URI or set PROTODB_BANK")
    if "://" in value:
        return value
    return str(Path(value).expanduser().resolve())


def device_setting(device: str | None = None) -> str:
    """The device asked for (argument, else $PROTODB_DEVICE, else 'auto'), validated, unresolved."""
    value = device or os.environ.get(ENV_DEVICE) or "auto"
    if value not in DEVICES and not value.startswith("cuda:"):
        raise ProtodbError(f"unknown device {value!r}; use one of {', '.join(DEVICES)} or cuda:N")
    return value


def resolve_device(device: str | None = None) -> str:
    """Return 'cpu' or 'cuda[:N]' ('auto' picks CUDA when torch sees a GPU)."""
    value = device_setting(device)
    if value == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if value.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ProtodbError(
                f"device {value!r} asked for, but torch sees no CUDA GPU; use --device cpu"
            )
    return value


@dataclass(frozen=True)
class Settings:
    """The resolved global options of one protodb session."""

    bank: str
    profile: str
    device: str = "auto"

    @classmethod
    def resolve(
        cls, *, bank: str | None = None, profile: str | None = None, device: str | None = None
    ) -> Settings:
        return cls(
            bank=resolve_bank_uri(bank),
            profile=resolve_profile(profile),
            device=device_setting(device),
        )


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch intra-op threads (restored after). The test world's 64 px
    models run as fast on one thread as on two, and measured here 13x slower on two while
    another process keeps a core busy (threads waiting on each other)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
