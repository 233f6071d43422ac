"""The tiny DINOv2 twin: deterministic, cached (protodb.models.vision)."""

import torch
from conftest import state_checksum

from protodb.models.loading import TINY
from protodb.models.vision import load_dinov2


def test_tiny_dinov2_is_deterministic_and_keeps_global_rng():
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    a = load_dinov2.__wrapped__(TINY, None, "cpu")
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)  # the global seed must not matter
    b = load_dinov2.__wrapped__(TINY, None, "cpu")
    assert state_checksum(a) == state_checksum(b)
    assert not a.training


def test_load_dinov2_is_cached_per_process():
    assert load_dinov2(TINY, None, "cpu") is load_dinov2(TINY, None, "cpu")
