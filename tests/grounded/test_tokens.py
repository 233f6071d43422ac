"""Entity token positions, found by position in the tokenized prompt."""

from __future__ import annotations

import pytest

from protodb.errors import ProtodbError
from protodb.grounded.compose import Composition, Entity, parse_prompt
from protodb.grounded.tokens import entity_token_positions
from protodb.models.diffusion import tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_positions_point_at_each_mention(tok):
    c = parse_prompt("a red disc and a red disc on red grass", ["red disc", "red grass"])
    ids = tok(c.prompt).input_ids
    (disc, grass) = entity_token_positions(tok, c)
    want = tok("red disc", add_special_tokens=False).input_ids
    assert len(disc) == 2 * len(want)
    assert [ids[p] for p in disc] == want + want
    assert [ids[p] for p in grass] == tok("red grass", add_special_tokens=False).input_ids
    assert grass[0] > disc[-1]  # not the first "red" of the prompt


def test_an_entity_glued_to_other_text_is_refused(tok):
    c = Composition("discs", (Entity("disc", 1, ((0, 4),)),), "prompt", 0)
    with pytest.raises(ProtodbError, match="merges with the text around it"):
        entity_token_positions(tok, c)


def test_an_over_long_prompt_is_refused(tok):
    text = "a red disc " * 40
    c = parse_prompt(text, ["red disc"])
    with pytest.raises(ProtodbError, match="use a shorter prompt"):
        entity_token_positions(tok, c)
