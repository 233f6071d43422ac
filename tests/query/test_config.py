import numpy as np
import pytest

from protodb.errors import ProtodbError
from protodb.query.assemble import ExtractorPrototypes
from protodb.query.config import QueryConfig
from protodb.query.segment import select_rows


def _protos():
    rows = [
        {"polarity": "bg", "level": "class"},
        {"polarity": "fg", "level": "class"},
        {"polarity": "fg", "level": "instance"},
        {"polarity": "fg", "level": "part"},
    ]
    return ExtractorPrototypes(None, np.eye(4, dtype=np.float32), np.array([0, 1, 1, 1]), rows)


def test_defaults_keep_every_row():
    p = _protos()
    assert select_rows(p, QueryConfig()) is p


def test_no_background_drops_bg_rows():
    p = select_rows(_protos(), QueryConfig(background=False))
    assert [r["polarity"] for r in p.rows] == ["fg", "fg", "fg"]
    assert p.owner.tolist() == [1, 1, 1]
    assert np.array_equal(p.vectors, np.eye(4, dtype=np.float32)[1:])


def test_levels_select_rows():
    p = select_rows(_protos(), QueryConfig(levels=("class",)))
    assert [r["level"] for r in p.rows] == ["class", "class"]


@pytest.mark.parametrize(
    "kwargs", [{"levels": ()}, {"levels": ("parts",)}, {"stuff_threshold": 2.0}, {"eta": -0.1}]
)
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ProtodbError):
        QueryConfig(**kwargs)
