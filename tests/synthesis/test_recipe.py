"""Prototype recipes (protodb.synthesis.recipe): ids, their checks and ``--recipe`` parsing."""

import json

import pytest

from protodb.bank.recipe import (
    RECIPE_ID,
    check_recipe,
    legacy_recipe,
    parse_recipe_choices,
    recipe_id,
)
from protodb.errors import ProtodbError
from protodb.synthesis.recipe import default_recipe_id, make_recipe


def test_a_recipe_id_names_its_mask_source_and_hashes_everything_that_changes_a_prototype():
    base = make_recipe("otsu", 32, 32)
    assert RECIPE_ID.fullmatch(base.id) and base.id.startswith("otsu-")
    assert base.config["levels"] == ["class", "instance", "part"]
    assert base.config["mask"]["bins"] == 256
    others = [
        make_recipe("maskcut", 32, 32),
        make_recipe("otsu", 8, 32),
        make_recipe("otsu", 32, 4),
    ]
    ids = {base.id, *(r.id for r in others)}
    assert len(ids) == 4
    assert others[0].id.startswith("maskcut-")
    assert others[0].config["mask"]["proposals"] == {
        "tau": 0.15,
        "masks": 3,
        "input": 480,
        "reverse_corners": 3,  # CutLER's rules (issue 27 item 8)
        "component": "seed",
        "max_iou": 0.5,
        "min_area": 0.01,
    }
    assert make_recipe("otsu", 32, 32) == base  # deterministic
    assert recipe_id(json.loads(base.to_json())) == base.id
    assert default_recipe_id() == base.id and default_recipe_id(8) == others[1].id
    assert legacy_recipe("otsu", 8) == others[1]


def test_check_recipe_refuses_malformed_or_disagreeing_ids():
    r = make_recipe("maskcut", 4)
    assert check_recipe(r.id, r.to_json()) is None
    assert "not of the form" in check_recipe("otsu-XYZ", r.to_json())
    assert "not of the form" in check_recipe(None, r.to_json())
    assert "no readable recipe config" in check_recipe(r.id, "{not json")
    other = make_recipe("maskcut", 5)
    assert "does not match" in check_recipe(r.id, other.to_json())


def test_parse_recipe_choices():
    a, b = make_recipe("otsu", 2).id, make_recipe("maskcut", 2).id
    assert parse_recipe_choices(None) == ([], {})
    assert parse_recipe_choices([a, f"Red  Apple={b}"]) == ([a], {"red apple": b})
    with pytest.raises(ProtodbError, match="is not a recipe id"):
        parse_recipe_choices(["sky=otsu"])
    with pytest.raises(ProtodbError, match="names no class"):
        parse_recipe_choices([f"={a}"])


@pytest.mark.parametrize("source", ["otsu", "sam", "some-segmenter"])
def test_the_banks_legacy_recipes_are_what_add_still_makes(source):
    """The bank keeps the mask configs of sets built before recipe ids (protodb.bank.recipe,
    which imports nothing of synthesis); a plain add today must still make those recipes, or
    migrated sets and new ones would stop matching (then freeze the old values there)."""
    from protodb.bank.recipe import plain_recipe_id

    assert legacy_recipe(source, 8) == make_recipe(source, 8)
    assert plain_recipe_id(8) == default_recipe_id(8)


def test_maskcut_after_cutlers_rules_is_a_new_recipe():
    """Issue 27 item 8: MaskCut's corner, seed-component and drop rules change its masks, so
    its sets get a new recipe id; sets built before keep theirs (frozen in the bank)."""
    new = make_recipe("maskcut", 8)
    assert new.id != legacy_recipe("maskcut", 8).id
    proposals = new.config["mask"]["proposals"]
    assert proposals["reverse_corners"] == 3 and proposals["component"] == "seed"
    assert proposals["max_iou"] == 0.5 and proposals["min_area"] == 0.01


def test_adds_defaults_are_what_the_bank_calls_a_plain_set():
    """add's defaults live in protodb.synthesis.request (light: the CLI's help reads them); the
    bank keeps what a plain set was built with. They must agree."""
    from protodb.bank.recipe import LEGACY_PARTS, PLAIN_MASK_SOURCE
    from protodb.synthesis.request import DEFAULT_MASK_SOURCE, DEFAULT_PARTS

    assert (DEFAULT_PARTS, DEFAULT_MASK_SOURCE) == (LEGACY_PARTS, PLAIN_MASK_SOURCE)
