"""The subject finder on hand-written RefCOCO-style expressions (written for protodb, not taken
from RefCOCO), with the head noun a reader would name."""

from __future__ import annotations

import pytest

from protodb.errors import ProtodbError
from protodb.refer.subject import find_subject, rule_subject

# (expression, expected head noun)
EXPRESSIONS = [
    ("man on the left", "man"),
    ("left guy", "guy"),
    ("the woman in the red shirt", "woman"),
    ("second car from the left", "car"),
    ("girl holding an umbrella", "girl"),
    ("white car", "car"),
    ("person far right", "person"),
    ("the red one on the left", "one"),
    ("guy in white shirt sitting down", "guy"),
    ("the tallest giraffe", "giraffe"),
    ("baby elephant", "elephant"),
    ("zebra in the back", "zebra"),
    ("bottom left sandwich", "sandwich"),
    ("a slice of pizza on the right", "pizza"),
    ("the bowl of soup near the bread", "soup"),
    ("middle horse", "horse"),
    ("the umpire behind the catcher", "umpire"),
    ("small dog next to the couch", "dog"),
    ("catcher", "catcher"),
    ("blue shirt guy", "guy"),
    ("the tennis player wearing a cap", "player"),
    ("black and white cat", "cat"),
    ("woman's bag", "bag"),
    ("the closest chair", "chair"),
    ("brown teddy bear on the right", "bear"),
    ("man with glasses", "man"),
    ("kid who is eating cake", "kid"),
    ("the skier in yellow", "skier"),
    ("front bike", "bike"),
    ("old man sitting on the bench", "man"),
    ("lady that is standing", "lady"),
    ("the plate with the biggest donut", "plate"),
    ("sitting woman", "woman"),
    ("third banana from top", "banana"),
    ("motorcycle closest to us", "motorcycle"),
    ("the building behind the bus", "building"),
    ("cow lying down", "cow"),
    ("player number 22", "player"),
    ("dark horse far left", "horse"),
    ("empty glass", "glass"),
    ("striped shirt kid", "kid"),
    ("the painting above the fireplace", "painting"),
    ("half of the sandwich on the left", "sandwich"),
    ("top right corner cake", "cake"),
    ("a group of people by the door", "people"),
    ("the bigger elephant", "elephant"),
    ("stop sign", "sign"),
    ("man in front", "man"),
    ("hot dog closest to you", "dog"),
    ("guy on right in blue", "guy"),
]


def rule_accuracy() -> tuple[int, int, list[tuple[str, str, str]]]:
    """(right, total, misses as (expression, expected, found)) of the rules on EXPRESSIONS."""
    misses = []
    for text, want in EXPRESSIONS:
        got = rule_subject(text).word.lower()
        if got != want:
            misses.append((text, want, got))
    return len(EXPRESSIONS) - len(misses), len(EXPRESSIONS), misses


def test_at_least_forty_expressions():
    assert len(EXPRESSIONS) >= 40
    assert len({t for t, _ in EXPRESSIONS}) == len(EXPRESSIONS)


def test_rule_accuracy_on_the_hand_written_set():
    right, total, misses = rule_accuracy()
    print(f"subject finder (rules): {right}/{total} = {100 * right / total:.1f}% misses={misses}")
    assert right / total >= 0.9, misses


@pytest.mark.parametrize("text", ["the red one on the left", "a slice of pizza on the right"])
def test_span_points_into_the_expression(text):
    s = rule_subject(text)
    assert text[s.start : s.end] == s.word
    assert s.method == "rules"


def test_no_noun_falls_back_and_says_so():
    s = rule_subject("far right")
    assert (s.word, s.method) == ("right", "rules (no noun)")
    assert rule_subject("the").method == "expression"


def test_override_must_be_a_word_of_the_expression():
    s = find_subject("the dog on the left", override="Dog")
    assert (s.word, s.start, s.method) == ("dog", 4, "override")
    with pytest.raises(ProtodbError, match="not a word of the expression"):
        find_subject("the dog on the left", override="cat")
    with pytest.raises(ProtodbError, match="not a word"):
        find_subject("the doghouse", override="dog")


def test_empty_expression_is_an_error():
    with pytest.raises(ProtodbError, match="empty"):
        find_subject("   ")


def test_auto_uses_rules_without_spacy_and_spacy_is_refused_clearly():
    from protodb.refer.subject import spacy_model

    if spacy_model() is not None:
        assert find_subject("the man on the left").method.startswith("spacy:")
        return
    assert find_subject("the man on the left").method == "rules"
    with pytest.raises(ProtodbError, match="needs spaCy"):
        find_subject("the man on the left", method="spacy")
