"""protodb: a prototype database and query engine for training-free open-vocabulary
segmentation (after OVDiff, Karazija et al. 2023).

    import protodb
    db = protodb.connect("bank/", profile="tiny")
    db.add(["red apple", "grass"], n=4)
    db.create_vocab("v1", ["red apple", "grass"])
    result = db.vocab("v1").segment("photo.jpg")   # result.labels: uint8 [H, W]
"""

__version__ = "0.1.0"

from protodb.api import ProtoDB, connect  # noqa: E402
from protodb.errors import ModelNotFoundError, NotFoundError, ProtodbError  # noqa: E402
from protodb.query.config import QueryConfig  # noqa: E402

__all__ = [
    "ProtoDB",
    "connect",
    "QueryConfig",
    "ProtodbError",
    "NotFoundError",
    "ModelNotFoundError",
    "__version__",
]
