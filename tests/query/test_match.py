import math

import pytest
import torch

from protodb.query.match import (
    PrototypeIndex,
    block_size,
    labels_from_scores,
    match,
    match_index,
)


def _unit(*v):
    t = torch.tensor(v, dtype=torch.float32)
    return t / t.norm()


def test_match_per_label_max_and_winner_by_hand():
    # D=2 features on a 1x3 grid: pointing at 0, 90 and 180 degrees (unnormalised)
    feats = torch.tensor([[[2.0, 0.0, -5.0]], [[0.0, 3.0, 0.0]]])  # [D=2, h=1, w=3]
    vectors = torch.stack(
        [
            _unit(1, 0),  # row 0 -> label 1
            _unit(1, 1),  # row 1 -> label 1
            _unit(0, 1),  # row 2 -> label 0
            _unit(-1, 0),  # row 3 -> label 2
        ]
    )
    owner = torch.tensor([1, 1, 0, 2])
    scores, winner = match(feats, vectors, owner, 4)
    assert scores.shape == (4, 1, 3) and winner.shape == (4, 1, 3)
    assert scores.dtype == torch.float32 and winner.dtype == torch.int64
    r = 1 / math.sqrt(2)
    expected = torch.tensor(
        [
            [0.0, 1.0, 0.0],  # label 0: (0, 1)
            [1.0, r, -r],  # label 1: max of (1, 0) and (1, 1)/sqrt2
            [-1.0, 0.0, 1.0],  # label 2: (-1, 0)
        ]
    )
    assert torch.allclose(scores[:3, 0], expected, atol=1e-6)
    assert winner[:3, 0].tolist() == [[2, 2, 2], [0, 1, 1], [3, 3, 3]]
    # label 3 has no prototype
    assert torch.isneginf(scores[3]).all()
    assert (winner[3] == -1).all()


def test_match_ignores_feature_norm_and_uses_cosine():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(8, 3, 4, generator=g)
    vectors = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=1)
    owner = torch.tensor([0, 1, 1, 2, 2])
    s1, w1 = match(feats, vectors, owner, 3)
    s2, w2 = match(feats * 7.5, vectors, owner, 3)
    assert torch.allclose(s1, s2, atol=1e-6) and torch.equal(w1, w2)
    f = torch.nn.functional.normalize(feats.reshape(8, -1), dim=0)
    sims = vectors @ f
    for label in range(3):
        rows = (owner == label).nonzero().flatten()
        best, arg = sims[rows].max(0)
        assert torch.allclose(s1[label].reshape(-1), best, atol=1e-6)
        assert torch.equal(w1[label].reshape(-1), rows[arg])
    assert (s1.abs() <= 1 + 1e-6).all()


def test_labels_from_scores_by_hand():
    scores = torch.tensor(
        [
            [[0.1, -0.2, 0.0, 0.5]],  # background
            [[0.3, -0.1, 0.0, 0.5]],  # class 1
            [[0.2, -0.5, -0.3, 0.5]],  # class 2
        ]
    )
    # pixel 0: class 1 wins; pixel 1: all negative -> zeros -> background;
    # pixel 2: all <= 0 -> background; pixel 3: three-way tie -> lowest label
    assert labels_from_scores(scores).tolist() == [[1, 0, 0, 0]]


def test_labels_ties_go_to_lowest_label():
    scores = torch.tensor([[[-1.0, 0.2]], [[0.4, 0.7]], [[0.4, 0.7]]])
    assert labels_from_scores(scores).tolist() == [[1, 1]]


def test_labels_handle_inf_and_nan():
    scores = torch.tensor(
        [[[float("-inf"), float("nan")]], [[float("-inf"), 0.3]], [[float("nan"), 0.1]]]
    )
    labels = labels_from_scores(scores)
    assert labels.dtype == torch.int64
    assert labels.tolist() == [[0, 1]]


@pytest.mark.parametrize("n_labels", [1, 3])
def test_match_with_no_prototypes(n_labels):
    scores, winner = match(
        torch.ones(2, 1, 1), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), n_labels
    )
    assert torch.isneginf(scores).all() and (winner == -1).all()
    assert labels_from_scores(scores).tolist() == [[0]]


def test_block_size_pads_least():
    assert block_size([9750] + [65] * 150) == 65
    assert block_size([1, 2, 1, 0]) == 1
    assert block_size([4, 4, 4]) == 4
    assert block_size([]) == 1


@pytest.mark.parametrize("budget", [1 << 24, 500, 1])
def test_match_many_blocks_against_a_loop(budget):
    """A background spanning many blocks, labels of uneven sizes, one label empty, chunks of
    any size: the per-label max and winner equal a plain loop over labels."""
    g = torch.Generator().manual_seed(1)
    owner = torch.cat([torch.zeros(130, dtype=torch.long), torch.randint(1, 7, (90,), generator=g)])
    owner = owner[torch.randperm(len(owner), generator=g)]
    vectors = torch.nn.functional.normalize(torch.randn(len(owner), 12, generator=g), dim=1)
    feats = torch.randn(12, 6, 9, generator=g)
    index = PrototypeIndex.build(vectors, owner, 8)
    assert index.vectors.shape[0] == index.block * index.block_owner.numel()
    scores, winner = match_index(feats, index, budget=budget)
    f = torch.nn.functional.normalize(feats.reshape(12, -1), dim=0)
    sims = vectors @ f
    for label in range(8):
        rows = (owner == label).nonzero().flatten()
        if len(rows) == 0:
            assert torch.isneginf(scores[label]).all() and (winner[label] == -1).all()
            continue
        best, arg = sims[rows].max(0)
        assert torch.allclose(scores[label].reshape(-1), best, atol=1e-6)
        assert torch.equal(winner[label].reshape(-1), rows[arg])
