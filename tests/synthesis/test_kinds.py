import numpy as np
import pytest

from protodb.errors import ProtodbError
from protodb.synthesis.kinds import decide_kind, guess_kind, lexicon, lexicon_kind


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("sky", "stuff"),  # COCO-Stuff 'sky-other' without its suffix
        ("Sky", "stuff"),
        ("brick wall", "stuff"),  # 'wall-brick' read the other way round
        ("sea", "stuff"),  # the paper's chat model got sea, sand, river wrong
        ("sand", "stuff"),
        ("river", "stuff"),
        ("grass", "stuff"),
        ("sidewalk", "stuff"),  # PASCAL Context / ADE20K
        ("dog", "thing"),
        ("red apple", "thing"),  # last word
        ("teddy bear", "thing"),
        ("table", "stuff"),  # in COCO-Stuff and VOC: stuff wins
    ],
)
def test_lexicon(name, kind):
    assert lexicon_kind(name)[0] == kind


def test_lexicon_sizes_and_unknown():
    table = lexicon()
    assert sum(1 for k, _ in table.values() if k == "stuff") > 100
    assert lexicon_kind("donut with chocolate glaze") is None  # 'glaze' is in no list


def _masks(kind):
    fg = np.zeros((3, 20, 20), bool)
    if kind == "stuff":
        fg[:, 6:, :] = True  # the lower 70 %, touching three edges
    else:
        fg[:, 6:14, 6:14] = True
    return fg


def test_guess_by_area_and_border_contact():
    stuff = guess_kind(_masks("stuff"))
    assert stuff.kind == "stuff" and stuff.source == "auto"
    # by hand: area 280/400 = 0.70; border: bottom row 20 + left/right columns 13 each = 46
    # of 76 border pixels = 0.605
    assert stuff.detail == "fg area 0.70, border contact 0.61"
    assert guess_kind(_masks("thing")).kind == "thing"
    with pytest.raises(ProtodbError, match="bool"):
        guess_kind(np.zeros((20, 20), bool))


def test_decision_order_user_lexicon_auto():
    assert decide_kind("dog", "stuff", _masks("thing")) == decide_kind("x", "stuff")
    assert decide_kind("dog", "stuff").source == "user"
    d = decide_kind("sky", None, _masks("thing"))
    assert (d.kind, d.source, d.detail) == ("stuff", "lexicon", "coco_stuff")
    assert decide_kind("glaze", None, _masks("stuff")).source == "auto"
    assert decide_kind("glaze").kind == "unknown" and decide_kind("glaze").source == "none"
    with pytest.raises(ProtodbError, match="'solid' is not one of stuff, thing"):
        decide_kind("x", "solid")
