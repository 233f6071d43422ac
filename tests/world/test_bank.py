"""A bank of the world's classes (protodb.world.bank)."""

from __future__ import annotations

import pytest

import protodb
from protodb.errors import ProtodbError


def test_build_bank_needs_the_world_profile(tmp_path):
    db = protodb.connect(tmp_path / "bank", profile="tiny", device="cpu")
    with pytest.raises(ProtodbError, match="needs profile 'world'"):
        db.build_world(n=2)


def test_adding_a_class_outside_the_world_fails_clearly(tmp_path):
    db = protodb.connect(tmp_path / "bank", profile="world", device="cpu")
    with pytest.raises(ProtodbError, match="'giraffe' is not in the offline test world"):
        db.add(["giraffe"], n=2, progress=False)
