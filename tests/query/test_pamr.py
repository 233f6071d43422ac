"""PAMR on fixed inputs against a per-pixel loop written from the definition (parity hook)."""

import numpy as np
import pytest
import torch

from protodb.query.pamr import DILATIONS, ITERATIONS, affinity, pamr


def naive_pamr(image, scores, iterations, dilations):
    """image [3, H, W], scores [K, H, W] (numpy float64), a loop over pixels and neighbours."""
    c, h, w = image.shape

    def at(a, y, x):  # replicate borders
        return a[:, min(max(y, 0), h - 1), min(max(x, 0), w - 1)]

    offs = [(dy, dx) for d in dilations for dy in (-d, 0, d) for dx in (-d, 0, d)]
    neigh = [o for o in offs if o != (0, 0)]
    aff = np.zeros((len(neigh), h, w))
    for y in range(h):
        for x in range(w):
            samples = np.stack([at(image, y + dy, x + dx) for dy, dx in offs], 1)  # [C, 9D]
            std = samples.std(axis=1, ddof=1)
            logits = []
            for dy, dx in neigh:
                diff = np.abs(at(image, y + dy, x + dx) - image[:, y, x])
                logits.append((-diff / (1e-8 + 0.1 * std)).mean())
            logits = np.array(logits)
            e = np.exp(logits - logits.max())
            aff[:, y, x] = e / e.sum()
    x_ = scores.copy()
    for _ in range(iterations):
        out = np.zeros_like(x_)
        for y in range(h):
            for x in range(w):
                for n, (dy, dx) in enumerate(neigh):
                    out[:, y, x] += aff[n, y, x] * at(x_, y + dy, x + dx)
        x_ = out
    return x_


@pytest.mark.parametrize(("dilations", "iterations"), [((1, 2), 3), (DILATIONS, 2)])
def test_pamr_matches_the_definition(dilations, iterations):
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (3, 9, 11))
    image[:, 3:7, 2:6] = 200.0  # a flat patch: std 0 -> the 1e-8 guard
    scores = rng.uniform(-1, 1, (2, 9, 11))
    expected = naive_pamr(image, scores, iterations, dilations)
    got = pamr(
        torch.tensor(image), torch.tensor(scores, dtype=torch.float32), iterations, dilations
    )
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)


def test_affinity_is_a_distribution_over_48_neighbours():
    rng = np.random.default_rng(1)
    aff = affinity(torch.tensor(rng.uniform(0, 1, (3, 6, 5))))
    assert aff.shape == (48, 6, 5)
    torch.testing.assert_close(aff.sum(0), torch.ones(6, 5))
    # a flat image: every neighbour alike
    flat = affinity(torch.full((3, 4, 4), 0.5))
    torch.testing.assert_close(flat, torch.full((48, 4, 4), 1 / 48))


def test_constant_scores_stay_constant_and_edges_are_kept():
    img = torch.zeros(3, 16, 16)
    img[:, :, 8:] = 255.0  # two flat halves
    const = torch.full((2, 16, 16), 0.3)
    torch.testing.assert_close(pamr(img, const), const)
    step = torch.zeros(1, 16, 16)
    step[:, :, 8:] = 1.0
    out = pamr(img, step, ITERATIONS)
    # the affinity across the colour edge is ~0: the step survives
    assert out[0, :, :8].max() < 1e-3 and out[0, :, 8:].min() > 1 - 1e-3


def test_pamr_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="differ"):
        pamr(torch.zeros(3, 4, 4), torch.zeros(2, 5, 4))
