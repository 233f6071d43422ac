"""protodb: a prototype database and query engine for training-free open-vocabulary
segmentation (after OVDiff, Karazija et al. 2023).

    import protodb
    db = protodb.connect("bank/", profile="tiny")
    db.add(["red apple", "grass"], n=4)
    db.create_vocab("v1", ["red apple", "grass"])
    result = db.vocab("v1").segment("photo.jpg")   # result.labels: uint8 [H, W]
"""

from protodb.api import ProtoDB, connect
from protodb.errors import ModelNotFoundError, NotFoundError, ProtodbError
from protodb.query.config import QueryConfig
from protodb.version import __version__

__all__ = [
    "ProtoDB",
    "connect",
    "QueryConfig",
    "ProtodbError",
    "NotFoundError",
    "ModelNotFoundError",
    "__version__",
]
