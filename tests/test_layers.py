"""The layers' rules, on the AST import graph of tests/test_package.py (function-level and
``TYPE_CHECKING`` imports included), each with a control that shows it can fail:

a. Nothing below the facade reaches back up to it: only ``protodb`` (the package, whose lazy
   ``connect`` / ``ProtoDB`` resolve to ``protodb.api``), the CLI (``protodb.cli.*``) and
   ``protodb.demo`` import ``protodb.api``, or ``protodb`` itself for those names; and no function
   below the facade takes the facade as a parameter ``db`` to call it back.
b. The test world stays in ``protodb/world/``: no production module outside it imports
   ``protodb.world*``, except ``protodb.cli.world``, the ``protodb world`` command group (the
   world's own CLI; ``protodb.demo`` is not allowed). A registry's lazy entry that names a world
   module (``register_lazy("world", "protodb.world.extractor")``) is a name, not an import: the
   world registers itself when a user asks for one of its plugins.
c. The bank does not reach up into synthesis: no ``protodb.bank*`` module imports
   ``protodb.synthesis*``.
d. A profile is data, not a string tested in code: no comparison of a profile against a
   string (``profile ==``, ``!=``, ``in (...)``, ``not in``) outside the profile definitions
   (``protodb/profiles.py``) and the test world (``protodb/world/``).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

from test_package import ROOT, _import_graph, _imports, _modules

FACADE = "protodb.api"
#: the modules allowed to import the facade: the package itself, the CLI, the demo
FACADE_USERS = ("protodb", "protodb.cli.*", "protodb.demo")
WORLD = "protodb.world"
#: the one module outside protodb/world/ allowed to import the world: its command group
WORLD_USERS = ("protodb.cli.world",)


def _matches(module: str, patterns: tuple[str, ...]) -> bool:
    """``module`` is one of ``patterns`` (``"a.b.*"``: a.b's submodules)."""
    return any(module.startswith(p[:-1]) if p.endswith(".*") else module == p for p in patterns)


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _facade_imports(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for every module below the facade that imports it (or the
    package ``protodb``, whose lazy names resolve to it)."""
    return sorted(
        f"{u} -> {v}"
        for u, deps in graph.items()
        if u != FACADE and not _matches(u, FACADE_USERS)
        for v in deps
        if v in (FACADE, "protodb")
    )


def _facade_parameters(sources: dict[str, str]) -> list[str]:
    """``module.function`` for every function below the facade that takes a parameter ``db``
    (the facade, passed down to be called back)."""
    found = []
    for name, source in sources.items():
        if name == FACADE or _matches(name, FACADE_USERS):
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                if "db" in [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]:
                    found.append(f"{name}.{node.name}")
    return sorted(found)


def _world_imports(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for every module outside protodb/world/ (and not a
    WORLD_USERS) that imports a world module."""
    return sorted(
        f"{u} -> {v}"
        for u, deps in graph.items()
        if not _in(u, WORLD) and not _matches(u, WORLD_USERS)
        for v in deps
        if _in(v, WORLD)
    )


def _bank_synthesis_imports(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for every bank module that imports a synthesis module."""
    return sorted(
        f"{u} -> {v}"
        for u, deps in graph.items()
        if _in(u, "protodb.bank")
        for v in deps
        if _in(v, "protodb.synthesis")
    )


# `profile ==` / `!=` / `in (`, `[`, `{` / `not in`, and a string literal compared with a profile
# ("S" stands for every string literal: the code is read through tokenize, so that a docstring
# or a comment that shows such a comparison does not count)
_PROFILE_TEST = re.compile(
    r"\bprofile\s*(?:==|!=)"
    r"|\bprofile\s+(?:not\s+in\b|in\s*[(\[{])"
    r'|"S"\s*(?:==|!=)\s*(?:\w+\s*\.\s*)*profile\b'
)


def _code_lines(source: str) -> dict[int, str]:
    """First line number -> the code of each logical line (a statement split over lines is
    one), comments dropped and every string literal as ``"S"``."""
    lines: dict[int, str] = {}
    parts: list[str] = []
    start = 0
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NEWLINE:
            lines[start] = " ".join(parts)
            parts = []
        elif tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT):
            start = start if parts else tok.start[0]
            parts.append('"S"' if tok.type == tokenize.STRING else tok.string)
    if parts:
        lines[start] = " ".join(parts)
    return lines


def _profile_comparisons(source: str) -> list[int]:
    """The (first) line numbers of the statements of ``source`` that test a profile by value."""
    return [n for n, code in _code_lines(source).items() if _PROFILE_TEST.search(code)]


def _production_sources() -> dict[str, Path]:
    """protodb/ and cli/ files outside the profile definitions and the test world."""
    return {
        name: path
        for name, path in _modules().items()
        if not _in(name, WORLD) and name != "protodb.profiles"
    }


def test_the_layer_checkers_report_a_broken_rule():
    graph = {
        "protodb": {FACADE},
        "protodb.cli.add": {FACADE, "protodb.world.report"},
        "protodb.cli.world": {"protodb.world.dataset"},
        "protodb.demo": {FACADE, "protodb.world.dataset"},
        "protodb.api": {"protodb.world.bank", "protodb.bank.store"},
        "protodb.world.report": {"protodb", "protodb.world.dataset"},
        "protodb.query.segment": {FACADE},
        "protodb.bank.store": {"protodb.synthesis.recipe", "protodb.errors"},
        "protodb.bank.share.validate": {"protodb.synthesis"},
        "protodb.synthesis.add": {"protodb.bank.store"},
    }
    assert _facade_imports(graph) == [
        "protodb.query.segment -> protodb.api",
        "protodb.world.report -> protodb",
    ]
    assert _world_imports(graph) == [
        "protodb.api -> protodb.world.bank",
        "protodb.cli.add -> protodb.world.report",
        "protodb.demo -> protodb.world.dataset",
    ]
    assert _bank_synthesis_imports(graph) == [
        "protodb.bank.share.validate -> protodb.synthesis",
        "protodb.bank.store -> protodb.synthesis.recipe",
    ]
    # from source: an import inside a function counts, a lazy registry name does not
    mods = {"protodb", FACADE, "protodb.world", "protodb.world.extractor", "protodb.errors"}
    source = (
        "from protodb.errors import ProtodbError\n"
        "EXTRACTORS.register_lazy('world', 'protodb.world.extractor')\n"
        "def run(bank, *, db=None):\n"
        "    from protodb.api import connect\n"
        "    import protodb.world\n"
    )
    assert _imports(source, mods) == {"protodb.errors", FACADE, "protodb.world"}
    sources = {"protodb.grounded.run": source, "protodb.cli.add": "def add(db): ..."}
    assert _facade_parameters(sources) == ["protodb.grounded.run.run"]


def test_the_profile_comparison_counter_reports_a_comparison():
    source = (
        '"""A docstring that shows ``profile == "tiny"`` counts not."""\n'
        'if settings.profile == "tiny":  # 2\n'
        "    pass\n"
        'tiny = profile != "world"  # 4\n'
        'if profile in ("world", "world-learned"): pass  # 5\n'
        "if db.profile not in WORLDS: pass  # 6\n"
        'if "tiny" == self.profile: pass  # 7\n'
        "ok = (\n    settings.profile\n    == 'world'\n)  # 8-11\n"
        "profile = get_profile(profile_name)  # a Profile record: fine\n"
        "if profile.tiny and profile_name in PROFILES: pass  # attributes, a registry: fine\n"
        "# profile == 'tiny' in a comment counts not\n"
    )
    assert _profile_comparisons(source) == [2, 4, 5, 6, 7, 8]


def test_no_module_below_the_facade_imports_it():
    graph = _import_graph()
    assert any(FACADE in deps for u, deps in graph.items() if _matches(u, FACADE_USERS))
    found = _facade_imports(graph)
    print("\n".join(found))
    assert found == []


def test_no_function_below_the_facade_takes_it_to_call_it_back():
    sources = {name: path.read_text() for name, path in _modules().items()}
    found = _facade_parameters(sources)
    print("\n".join(found))
    assert found == []


def test_no_production_module_outside_the_world_imports_it():
    found = _world_imports(_import_graph())
    print("\n".join(found))
    assert found == []


def test_no_bank_module_imports_synthesis():
    graph = _import_graph()
    assert any(_in(u, "protodb.bank") for u in graph)
    found = _bank_synthesis_imports(graph)
    print("\n".join(found))
    assert found == []


def test_no_profile_string_comparison_outside_the_profile_definitions():
    sources = _production_sources()
    assert "protodb.cli.app" in sources and "protodb.world.bank" not in sources
    found = [
        f"{path.relative_to(ROOT)}:{n}: {path.read_text().splitlines()[n - 1].strip()}"
        for path in sources.values()
        for n in _profile_comparisons(path.read_text())
    ]
    print(f"{len(found)} profile string comparisons\n" + "\n".join(sorted(found)))
    assert found == []
