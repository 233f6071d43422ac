"""The package's shape: `import protodb` stays light, and no protodb module imports itself
back through others (no import circle, function-level imports included)."""

import ast
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "pyarrow", "torch", "diffusers", "transformers", "open_clip", "lancedb")
HEAVY += ("protodb.world", "protodb.api")


def _loaded_after(statement: str) -> str:
    """The HEAVY modules loaded in a fresh interpreter after ``statement``, comma-joined."""
    code = f"import sys\n{statement}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_protodb_loads_no_array_or_model_library_and_no_test_world():
    assert _loaded_after("import protodb") == ""
    assert _loaded_after("import protodb; protodb.__version__; protodb.ProtodbError") == ""


def test_cli_help_loads_no_array_or_model_library():
    statement = (
        "from typer.testing import CliRunner\n"
        "from protodb.cli.app import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0"
    )
    assert _loaded_after(statement) == ""


def test_public_names_resolve_on_first_use():
    assert "protodb.api" in _loaded_after("import protodb; protodb.connect")
    import protodb

    for name in protodb.__all__:
        assert getattr(protodb, name) is not None
    assert set(protodb.__all__) <= set(dir(protodb))


def _modules() -> dict[str, Path]:
    mods = {}
    for base, pkg in ((ROOT / "protodb", "protodb"), (ROOT / "cli", "protodb.cli")):
        for f in base.rglob("*.py"):
            parts = [pkg, *f.relative_to(base).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = f
    return mods


def _imports(source: str, mods: Collection[str]) -> set[str]:
    """The modules of ``mods`` that ``source`` imports anywhere: at module level, inside
    functions, under ``if TYPE_CHECKING``. ``from protodb.x import y`` counts as an import of
    ``protodb.x.y`` when that is a module, else of ``protodb.x``."""
    deps = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("protodb"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                deps.add(full if full in mods else node.module)
        elif isinstance(node, ast.Import):
            deps.update(a.name for a in node.names if a.name.startswith("protodb"))
    return {d for d in deps if d in mods}


def _import_graph() -> dict[str, set[str]]:
    """Every protodb module (protodb/ and cli/ as protodb.cli) -> the protodb modules it
    imports (see :func:`_imports`)."""
    mods = _modules()
    return {name: _imports(path.read_text(), mods) - {name} for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(u: str) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                found.append([*stack[stack.index(v) :], v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for u in sorted(graph):
        if u not in state:
            visit(u)
    return found


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_between_protodb_modules():
    graph = _import_graph()
    assert "protodb.bank.store" in graph and graph["protodb.api"]
    assert _cycles(graph) == []
