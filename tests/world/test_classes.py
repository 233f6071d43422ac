"""The test world's classes (protodb.world.classes)."""

from __future__ import annotations

import pytest

from protodb.errors import ProtodbError
from protodb.world.classes import world_class


def test_unknown_class_lists_the_world_classes():
    with pytest.raises(ProtodbError, match="not in the offline test world.*red disc.*water"):
        world_class("giraffe")
    assert world_class("Red  Disc").name == "red disc"
