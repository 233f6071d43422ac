"""protodb: a prototype database and query engine for training-free open-vocabulary
segmentation (after OVDiff, Karazija et al. 2023).

    import protodb
    db = protodb.connect("bank/", profile="tiny")
    db.add(["red apple", "grass"], n=4)
    db.create_vocab("v1", ["red apple", "grass"])
    result = db.vocab("v1").segment("photo.jpg")   # result.labels: uint8 [H, W]

``connect``, ``ProtoDB`` and ``QueryConfig`` are imported on first use (PEP 562), so
``import protodb`` (and ``protodb --help``) loads neither numpy nor pyarrow nor any model library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protodb.errors import ModelNotFoundError, NotFoundError, ProtodbError
from protodb.version import __version__

if TYPE_CHECKING:
    from protodb.api import ProtoDB, connect
    from protodb.query.config import QueryConfig

_LAZY = {"ProtoDB": "protodb.api", "connect": "protodb.api", "QueryConfig": "protodb.query.config"}

__all__ = [
    "ProtoDB",
    "connect",
    "QueryConfig",
    "ProtodbError",
    "NotFoundError",
    "ModelNotFoundError",
    "__version__",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'protodb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
