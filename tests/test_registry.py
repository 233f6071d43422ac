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


def _plugin_module(tmp_path, monkeypatch, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_lazy_entry_is_imported_on_first_get(tmp_path, monkeypatch):
    import sys

    import protodb.registry as registry_module

    reg: Registry = Registry("widget")
    monkeypatch.setattr(registry_module, "_TEST_REGISTRY", reg, raising=False)
    _plugin_module(
        tmp_path,
        monkeypatch,
        "protodb_lazy_widget",
        "from protodb.registry import _TEST_REGISTRY\n"
        "@_TEST_REGISTRY.register('lazy')\n"
        "def lazy():\n    return 'made lazily'\n",
    )
    reg.register_lazy("lazy", "protodb_lazy_widget")
    assert "lazy" in reg and reg.names() == ["lazy"]
    assert "protodb_lazy_widget" not in sys.modules  # named, not imported
    assert reg.get("lazy")() == "made lazily"
    assert "protodb_lazy_widget" in sys.modules
    monkeypatch.delitem(sys.modules, "protodb_lazy_widget")


def test_lazy_entry_whose_module_does_not_register_it(tmp_path, monkeypatch):
    _plugin_module(tmp_path, monkeypatch, "protodb_empty_plugin", "X = 1\n")
    reg: Registry = Registry("widget")
    reg.register_lazy("ghost", "protodb_empty_plugin")
    with pytest.raises(ValueError, match="protodb_empty_plugin did not register widget 'ghost'"):
        reg.get("ghost")


def test_lazy_names_are_listed_and_cannot_be_named_twice():
    reg: Registry = Registry("widget")
    reg.register("real")(1)
    reg.register_lazy("later", "no.such.module")
    with pytest.raises(ProtodbError, match="known widgets: later, real"):
        reg.get("other")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register_lazy("real", "no.such.module")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register_lazy("later", "no.such.module")


def test_every_builtin_lazy_plugin_resolves():
    from protodb.segmenters.base import SEGMENTERS

    for registry in (EXTRACTORS, GENERATORS, SEGMENTERS):
        for name in registry.names():
            assert registry.get(name) is not None
