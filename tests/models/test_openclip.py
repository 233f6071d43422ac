"""The tiny open_clip twin (protodb.models.openclip)."""

import torch
from conftest import state_checksum

from protodb.models.loading import TINY
from protodb.models.openclip import load_clip


def test_tiny_clip_is_deterministic():
    a = load_clip.__wrapped__(TINY, None, "cpu")
    b = load_clip.__wrapped__(TINY, None, "cpu")
    assert state_checksum(a) == state_checksum(b)
    img = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        assert a.encode_image(img).shape == (1, 32)
