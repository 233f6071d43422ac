"""Compositions: the seeded sampler over a vocabulary and prompts given by the user."""

from __future__ import annotations

import pytest

from protodb.errors import ProtodbError
from protodb.grounded.compose import parse_prompt, read_prompts, sample_compositions

CLASSES = ["red disc", "yellow star", "purple square", "grass", "sky"]
KINDS = ["thing", "thing", "thing", "stuff", "stuff"]


def test_sampler_is_keyed_and_grows_without_changing_earlier_compositions():
    a = sample_compositions(CLASSES, KINDS, 3, seed=0)
    b = sample_compositions(CLASSES, KINDS, 5, seed=0)
    assert a == sample_compositions(CLASSES, KINDS, 3, seed=0)
    assert len(a) == 15 and len(b) == 25
    by_slot = {(c.slot, c.index): c for c in b}
    assert all(by_slot[(c.slot, c.index)] == c for c in a)
    assert a != sample_compositions(CLASSES, KINDS, 3, seed=1)


def test_compositions_are_one_to_three_things_on_one_stuff_and_hold_their_anchor():
    for c in sample_compositions(CLASSES, KINDS, 6, seed=2):
        names = [e.name for e in c.entities]
        things = [n for n in names if n in CLASSES[:3]]
        stuff = [n for n in names if n in CLASSES[3:]]
        assert 1 <= len(things) <= 3 and len(stuff) == 1 and c.anchor in names
        assert len(set(names)) == len(names)
        for e in c.entities:  # the spans name the entity, its label is its vocabulary label
            ((start, stop),) = e.spans
            assert c.prompt[start:stop] == e.name and CLASSES[e.label - 1] == e.name
        assert c.prompt.endswith(f" on {stuff[0]}")


def test_vocabulary_without_stuff_draws_things_alone():
    comps = sample_compositions(["red disc", "yellow star"], ["thing", "thing"], 2)
    assert all(" on " not in c.prompt for c in comps)


def test_bad_per_class_is_refused():
    with pytest.raises(ProtodbError, match="--per-class 0 must be >= 1"):
        sample_compositions(CLASSES, KINDS, 0)


def test_prompt_entities_are_whole_words_longest_first_and_merged_per_class():
    c = parse_prompt(
        "A Red Disc next to a disc and a red disc on grassy grass", ["red disc", "disc", "grass"]
    )
    names = {e.name: e.spans for e in c.entities}
    assert names["red disc"] == ((2, 10), (32, 40))
    assert names["disc"] == ((21, 25),)
    assert names["grass"] == ((51, 56),)  # "grassy" is not "grass"


@pytest.mark.parametrize(
    "prompt, match",
    [("   ", "--prompt is empty"), ("a blue cube on sand", "names no class of the vocabulary")],
)
def test_bad_prompts_are_refused(prompt, match):
    with pytest.raises(ProtodbError, match=match):
        parse_prompt(prompt, CLASSES)


def test_read_prompts_skips_blank_and_comment_lines(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("# mine\na red disc on grass\n\n a sky \n")
    assert read_prompts(f) == ["a red disc on grass", "a sky"]
    (tmp_path / "e.txt").write_text("\n# nothing\n")
    with pytest.raises(ProtodbError, match="holds no prompt"):
        read_prompts(tmp_path / "e.txt")
    with pytest.raises(ProtodbError, match="is not a file"):
        read_prompts(tmp_path / "missing.txt")
