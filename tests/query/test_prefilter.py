"""The CLIP pre-filter's selection logic with a stand-in text encoder of fixed vectors
(parity hook: thresholds, fallbacks, the prompt list and its order, the winning subset)."""

import math

import numpy as np
import pytest
import torch

from protodb.query.prefilter import (
    ClipEncoders,
    candidate_indices,
    class_text,
    select_classes,
    subset_prompts,
)


class FixedText:
    """Stand-in text encoder: a fixed vector per prompt; records every call."""

    def __init__(self, table):
        self.table = {k: torch.tensor(v, dtype=torch.float32) for k, v in table.items()}
        self.calls = []

    def __call__(self, prompts):
        self.calls.append(list(prompts))
        return torch.stack([self.table[p] for p in prompts])


def _unit(angle):
    return [math.cos(angle), math.sin(angle), 0.0]


IMAGE = torch.tensor([1.0, 0.0, 0.0])
# single prompts: cosines to the image 1, 0.8, -0.5 -> softmax over the three thing classes
SINGLE = {"a cat": _unit(0.0), "a dog": _unit(math.acos(0.8)), "a car": _unit(math.acos(-0.5))}


def test_subset_prompts_order():
    assert subset_prompts(["cat", "dog", "car"]) == [
        ([0], "a cat"),
        ([1], "a dog"),
        ([0, 1], "a cat and a dog"),
        ([2], "a car"),
        ([0, 2], "a cat and a car"),
        ([1, 2], "a dog and a car"),
        ([0, 1, 2], "a cat and a dog and a car"),
    ]
    assert len(subset_prompts([str(i) for i in range(10)])) == 2**10 - 1


def test_candidates_threshold_and_fallbacks():
    # >= 1/|C| passes (1/4 = 0.25 exactly passes)
    assert candidate_indices([0.4, 0.25, 0.2, 0.15], eta=10) == ([0, 1], "threshold")
    # more than eta pass -> the top eta by probability, listed in vocabulary order
    assert candidate_indices([0.3, 0.1, 0.35, 0.25], eta=2) == ([0, 2], "top-eta")
    # none passes (not reachable with an exact softmax) -> the top eta of all
    assert candidate_indices([0.1, 0.2, 0.15], eta=2) == ([1, 2], "none-passed")
    # ties go to the earlier class
    assert candidate_indices([0.3, 0.3, 0.3, 0.1], eta=2) == ([0, 1], "top-eta")


def test_selection_with_fixed_vectors():
    names = ["cat", "sky", "dog", "car"]
    stuff = [False, True, False, False]
    table = dict(SINGLE)
    table["a cat and a dog"] = _unit(0.3)
    text = FixedText(table)
    sel = select_classes(names, stuff, IMAGE, text, eta=10)
    # the prompt list: thing classes only, vocabulary order
    assert text.calls[0] == ["a cat", "a dog", "a car"]
    p = np.exp([1.0, 0.8, -0.5])
    p /= p.sum()
    np.testing.assert_allclose(sel.probs, p, atol=1e-6)
    assert sel.things == [1, 3, 4]
    # 1/3 threshold: cat (0.49) and dog (0.40) pass, car (0.11) does not
    assert sel.candidates == [1, 3] and sel.rule == "threshold"
    assert sel.prompts == ["a cat", "a dog", "a cat and a dog"]
    assert text.calls[1] == sel.prompts
    np.testing.assert_allclose(sel.prompt_scores, [1.0, 0.8, math.cos(0.3)], atol=1e-6)
    # "a cat" alone is closest to the image: the winner; stuff (sky) bypasses the filter
    assert sel.winner == [1]
    assert sel.keep == [1, 2]


def test_the_multi_label_prompt_can_win_and_eta_caps():
    names = ["cat", "dog", "car"]
    table = dict(SINGLE)
    table["a cat and a dog"] = [1.0, 0.0, 0.0]  # exactly the image
    table["a cat"] = _unit(0.01)
    sel = select_classes(names, [False] * 3, IMAGE, FixedText(table), eta=10)
    assert sel.winner == [1, 2] and sel.keep == [1, 2]
    # eta = 1: only the best class enters the search
    text = FixedText(table)
    sel1 = select_classes(names, [False] * 3, IMAGE, text, eta=1)
    assert sel1.candidates == [1] and sel1.rule == "top-eta" and sel1.prompts == ["a cat"]
    assert sel1.keep == [1]


def test_prompts_are_encoded_in_batches():
    names = [f"c{i}" for i in range(5)]
    table = {f"a c{i}": [1.0, 0.0, 0.0] for i in range(5)}  # all equal: all pass
    for members, prompt in subset_prompts(names):
        table[prompt] = _unit(0.1 * len(members))
    text = FixedText(table)
    sel = select_classes(names, [False] * 5, IMAGE, text, eta=10, batch=7)
    assert all(len(c) <= 7 for c in text.calls)
    assert sum(len(c) for c in text.calls) == 5 + 31
    assert len(sel.prompts) == 31 and sel.winner in ([1], [2], [3], [4], [5])
    assert sel.winner == [1]  # ties: the first subset


def test_class_prompts_encoded_once_give_the_same_selection():
    """class_text computed once (as a Segmenter does for its vocabulary) selects exactly what
    computing it per image does, and the encoder then sees only the subset prompts."""
    names, stuff = ["cat", "sky", "dog", "car"], [False, True, False, False]
    table = dict(SINGLE)
    for members, prompt in subset_prompts(["cat", "dog", "car"]):
        table[prompt] = _unit(0.3 * len(members))
    cached = class_text(names, stuff, FixedText(table))
    assert cached.shape == (3, 3)
    text, plain = FixedText(table), FixedText(table)
    got = select_classes(names, stuff, IMAGE, text, things_text=cached)
    assert got == select_classes(names, stuff, IMAGE, plain)
    assert plain.calls[0] == ["a cat", "a dog", "a car"] and text.calls == plain.calls[1:]


def test_all_stuff_needs_no_encoder():
    sel = select_classes(["sky", "sea"], [True, True], IMAGE, FixedText({}))
    assert sel.keep == [1, 2] and sel.prompts == []


def test_real_open_clip_encoders_tiny():
    enc = ClipEncoders("tiny", None)
    t = enc.text(["a cat", "a cat and a dog"])
    i = enc.image(np.zeros((30, 50, 3), np.uint8))
    assert t.shape == (2, 32) and i.shape == (32,) and torch.isfinite(t).all()
    sel = select_classes(["cat", "dog"], [False, False], i, enc.text)
    assert set(sel.keep) <= {1, 2} and sel.keep


@pytest.mark.parametrize("eta", [0, 17, 2.5, True])
def test_bad_eta_is_refused(eta):
    from protodb.errors import ProtodbError
    from protodb.query.config import QueryConfig

    with pytest.raises(ProtodbError, match="eta"):
        QueryConfig(eta=eta)
