import pytest

from protodb.errors import ProtodbError
from protodb.extractors.base import EXTRACTORS
from protodb.registry import Registry
from protodb.synthesis.generate import GENERATORS
from protodb.synthesis.masks import MASK_SOURCES


def test_register_get_names_contains():
    reg: Registry = Registry("widget")

    @reg.register("b")
    def b():
        return "b"

    @reg.register("a")
    def a():
        return "a"

    assert reg.get("a") is a
    assert reg.get("b")() == "b"
    assert reg.names() == ["a", "b"]
    assert "a" in reg
    assert "c" not in reg


def test_register_returns_object_unchanged():
    reg: Registry = Registry("widget")
    obj = object()
    assert reg.register("x")(obj) is obj


def test_duplicate_registration_raises():
    reg: Registry = Registry("widget")
    reg.register("x")(1)
    with pytest.raises(ValueError, match="widget 'x' is registered twice"):
        reg.register("x")(2)
    assert reg.get("x") == 1


def test_unknown_name_lists_known_ones():
    reg: Registry = Registry("widget")
    reg.register("beta")(1)
    reg.register("alpha")(2)
    with pytest.raises(ProtodbError, match=r"unknown widget 'gamma'; known widgets: alpha, beta"):
        reg.get("gamma")


def test_unknown_name_in_empty_registry():
    with pytest.raises(ProtodbError, match=r"\(none\)"):
        Registry("widget").get("x")


def test_builtin_plugins_are_registered():
    assert "sd" in GENERATORS
    assert "dinov2" in EXTRACTORS
    assert "otsu" in MASK_SOURCES
